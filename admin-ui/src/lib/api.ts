// The GraphQL operations the UI uses, typed. Version history, publishing and `myAccess`
// come from the versions capability; `capabilities()` finds out once whether this server
// has them, so the UI can say so instead of failing.

import { gql } from './graphql'
import { ApiError, fromGraphQLError } from './errors'

export type Role = 'ADMIN' | 'EDITOR' | 'AUTHOR' | 'VIEWER'
export type DocStatus = 'DRAFT' | 'IN_REVIEW' | 'PUBLISHED' | 'ARCHIVED'
/** NONE: only the published content is readable. */
export type Access = 'NONE' | 'READ' | 'WRITE' | 'MANAGE'
export type Grant = 'EDITOR' | 'VIEWER' | 'NONE'

export const STATUSES: DocStatus[] = ['DRAFT', 'IN_REVIEW', 'PUBLISHED', 'ARCHIVED']
export const STATUS_LABEL: Record<DocStatus, string> = {
  DRAFT: 'Draft',
  IN_REVIEW: 'In review',
  PUBLISHED: 'Published',
  ARCHIVED: 'Archived'
}

export interface User { id: string, email?: string | null, displayName: string, role: Role }

export interface DocMeta {
  id: string
  title: string
  slug: string
  status: DocStatus
  lockVersion: number
  updatedAt: string
  createdAt: string
  owner?: { id: string, displayName: string } | null
  publishedVersionId?: string | null
  myAccess?: Access
}

export interface Version {
  id: string
  number: number
  label: string
  title: string
  author?: { id: string, displayName: string } | null
  createdAt: string
  restoredFrom?: number | null
  published: boolean
}

export type DiffOp = 'EQUAL' | 'INSERT' | 'DELETE'
export interface DiffPart { op: DiffOp, text: string }

export interface Capabilities { versions: boolean, publish: boolean, myAccess: boolean }

const USER = 'id email displayName role'
const DOC_BASE = 'id title slug status lockVersion updatedAt createdAt publishedVersionId owner { id displayName }'
const VERSION = 'id number label title createdAt restoredFrom published author { id displayName }'

let caps: Promise<Capabilities> | null = null

/** What this server supports (asked once). With introspection off, assume everything. */
export function capabilities (): Promise<Capabilities> {
  if (!caps) {
    caps = gql<{ q: { fields: { name: string }[] } | null, m: { fields: { name: string }[] } | null, d: { fields: { name: string }[] } | null }>(
      '{ q: __type(name: "Query") { fields { name } } m: __type(name: "Mutation") { fields { name } } d: __type(name: "Document") { fields { name } } }'
    ).then((r) => {
      const has = (t: { fields: { name: string }[] } | null, n: string) => t === null || t.fields.some((f) => f.name === n)
      return { versions: has(r.q, 'versions') && has(r.m, 'saveVersion'), publish: has(r.m, 'publish'), myAccess: has(r.d, 'myAccess') }
    }).catch(() => ({ versions: true, publish: true, myAccess: true }))
  }
  return caps
}

async function docFields (): Promise<string> {
  return (await capabilities()).myAccess ? `${DOC_BASE} myAccess` : DOC_BASE
}

export async function me (): Promise<User | null> {
  return (await gql<{ me: User | null }>(`{ me { ${USER} } }`)).me
}

// Sign-in goes through REST: it sets (and clears) the session cookie whatever stale cookie
// the browser still sends, while GraphQL refuses a request with an invalid one outright.
async function rest<T> (path: string, body?: unknown): Promise<T | null> {
  let res: Response
  try {
    res = await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: body === undefined ? { accept: 'application/json' } : { 'content-type': 'application/json', accept: 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
  } catch {
    throw new ApiError('NETWORK', 'network error')
  }
  const text = await res.text()
  const json = text ? JSON.parse(text) : null
  if (!res.ok) {
    const e = json?.error ?? {}
    throw fromGraphQLError({ message: e.message ?? `HTTP ${res.status}`, extensions: { code: e.code, field: e.field, current: e.current } })
  }
  return json as T
}

interface RestUser { id: string, email: string, displayName: string, role: string }
const fromRest = (u: RestUser): User => ({ id: u.id, email: u.email, displayName: u.displayName, role: u.role.toUpperCase() as Role })

export async function login (email: string, password: string): Promise<User> {
  const r = await rest<{ user: RestUser }>('/api/auth/login', { email, password })
  return fromRest(r!.user)
}

export async function register (email: string, password: string, displayName: string): Promise<User> {
  const r = await rest<{ user: RestUser }>('/api/auth/register', { email, password, displayName })
  return fromRest(r!.user)
}

/** Clears the session cookie (works with an expired or invalid one too). */
export async function logout (): Promise<void> {
  await rest('/api/auth/logout')
}

export interface DocPage { docs: DocMeta[], hasNextPage: boolean, endCursor: string | null }

export async function listDocuments (status: DocStatus | null, after: string | null, first = 20): Promise<DocPage> {
  const r = await gql<{ documents: { edges: { node: DocMeta }[], pageInfo: { hasNextPage: boolean, endCursor: string | null } } }>(
    `query($f: DocumentFilter, $first: Int, $after: String) {
      documents(filter: $f, first: $first, after: $after) { edges { node { ${DOC_BASE} } } pageInfo { hasNextPage endCursor } } }`,
    { f: status ? { status } : null, first, after })
  return { docs: r.documents.edges.map((e) => e.node), hasNextPage: r.documents.pageInfo.hasNextPage, endCursor: r.documents.pageInfo.endCursor }
}

export async function getDocument (id: string): Promise<DocMeta> {
  // draft: the live document (the default view is the published one, for frontends)
  const caps = await capabilities()
  const q = caps.myAccess
    ? `query($id: ID) { document(id: $id, draft: true) { ${await docFields()} } }`
    : `query($id: ID) { document(id: $id) { ${await docFields()} } }`
  return (await gql<{ document: DocMeta }>(q, { id })).document
}

export async function createDocument (title: string): Promise<DocMeta> {
  return (await gql<{ createDocument: DocMeta }>(
    `mutation($i: CreateDocumentInput!) { createDocument(input: $i) { ${DOC_BASE} } }`, { i: { title } })).createDocument
}

export async function updateDocument (id: string, input: { title?: string, status?: DocStatus }, lockVersion: number): Promise<DocMeta> {
  return (await gql<{ updateDocument: DocMeta }>(
    `mutation($id: ID!, $i: UpdateDocumentInput!, $v: Int!) { updateDocument(id: $id, input: $i, lockVersion: $v) { ${await docFields()} } }`,
    { id, i: input, v: lockVersion })).updateDocument
}

export async function deleteDocument (id: string): Promise<void> {
  await gql('mutation($id: ID!) { deleteDocument(id: $id) }', { id })
}

export async function grantAccess (documentId: string, userEmail: string, role: Grant): Promise<void> {
  await gql('mutation($d: ID!, $e: String!, $r: AccessGrant!) { grantAccess(documentId: $d, userEmail: $e, role: $r) }',
    { d: documentId, e: userEmail, r: role })
}

export async function listVersions (documentId: string, first = 50): Promise<Version[]> {
  const r = await gql<{ versions: { edges: { node: Version }[] } }>(
    `query($d: ID!, $first: Int) { versions(documentId: $d, first: $first) { edges { node { ${VERSION} } } } }`,
    { d: documentId, first })
  return r.versions.edges.map((e) => e.node)
}

export async function versionText (id: string): Promise<{ version: Version, text: string, html: string }> {
  const r = await gql<{ version: Version & { body: { text: string, html: string } } }>(
    `query($id: ID!) { version(id: $id) { ${VERSION} body { text html } } }`, { id })
  return { version: r.version, text: r.version.body.text, html: r.version.body.html }
}

export async function versionDiff (from: string, to: string | null): Promise<DiffPart[]> {
  const r = await gql<{ versionDiff: { words: DiffPart[] } }>(
    'query($f: ID!, $t: ID) { versionDiff(from: $f, to: $t) { words { op text } } }', { f: from, t: to })
  return r.versionDiff.words
}

export async function saveVersion (documentId: string, label: string): Promise<Version> {
  return (await gql<{ saveVersion: Version }>(
    `mutation($d: ID!, $l: String!) { saveVersion(documentId: $d, label: $l) { ${VERSION} } }`, { d: documentId, l: label })).saveVersion
}

export async function restoreVersion (versionId: string): Promise<Version> {
  return (await gql<{ restoreVersion: Version }>(
    `mutation($v: ID!) { restoreVersion(versionId: $v) { ${VERSION} } }`, { v: versionId })).restoreVersion
}

export async function publish (documentId: string): Promise<DocMeta> {
  return (await gql<{ publish: DocMeta }>(`mutation($d: ID!) { publish(documentId: $d) { ${await docFields()} } }`, { d: documentId })).publish
}

export async function unpublish (documentId: string): Promise<DocMeta> {
  return (await gql<{ unpublish: DocMeta }>(`mutation($d: ID!) { unpublish(documentId: $d) { ${await docFields()} } }`, { d: documentId })).unpublish
}

export interface PresenceEntry { userId: string | null, displayName: string, readOnly: boolean, clientId: string | null }

export async function presence (documentId: string): Promise<PresenceEntry[]> {
  return (await gql<{ presence: PresenceEntry[] }>(
    'query($d: ID!) { presence(documentId: $d) { userId displayName readOnly clientId } }', { d: documentId })).presence
}
