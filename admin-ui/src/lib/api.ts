// The GraphQL operations the UI uses, typed. Version history, publishing and `myAccess`
// come from the versions capability, plugins and the `fields` they compute from the
// plugins one, full-text search from the search one; `capabilities()` finds out once
// whether this server has them, so the UI can say so instead of failing.

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
  /** what `enrich` plugins computed for it, keyed by plugin name (servers with plugins) */
  fields?: Fields
}

/** Plugin-computed fields, keyed by plugin name: `{"word-count": {"words": 412, "readingMinutes": 3}}`. */
export type Fields = Record<string, unknown>

export type DiffOp = 'EQUAL' | 'INSERT' | 'DELETE'
export interface DiffPart { op: DiffOp, text: string }

export interface Capabilities { versions: boolean, publish: boolean, myAccess: boolean, plugins: boolean, fields: boolean, search: boolean }

/** What a server without introspection (or offline) is assumed to have. */
export const ALL_CAPABILITIES: Capabilities = { versions: true, publish: true, myAccess: true, plugins: true, fields: true, search: true }

const USER = 'id email displayName role'
const DOC_BASE = 'id title slug status lockVersion updatedAt createdAt publishedVersionId owner { id displayName }'
const VERSION = 'id number label title createdAt restoredFrom published author { id displayName }'

let caps: Promise<Capabilities> | null = null

/** What this server supports (asked once). With introspection off, assume everything. */
export function capabilities (): Promise<Capabilities> {
  if (!caps) {
    type T = { fields: { name: string }[] } | null
    caps = gql<{ q: T, m: T, d: T, v: T }>(
      '{ q: __type(name: "Query") { fields { name } } m: __type(name: "Mutation") { fields { name } } d: __type(name: "Document") { fields { name } } v: __type(name: "Version") { fields { name } } }'
    ).then((r) => {
      const has = (t: T, n: string) => t === null || t.fields.some((f) => f.name === n)
      return {
        versions: has(r.q, 'versions') && has(r.m, 'saveVersion'),
        publish: has(r.m, 'publish'),
        myAccess: has(r.d, 'myAccess'),
        plugins: has(r.q, 'plugins'),
        fields: has(r.d, 'fields') && has(r.v, 'fields'),
        search: has(r.q, 'search')
      }
    }).catch(() => ALL_CAPABILITIES)
  }
  return caps
}

async function docFields (): Promise<string> {
  return (await capabilities()).myAccess ? `${DOC_BASE} myAccess` : DOC_BASE
}

async function versionFields (): Promise<string> {
  return (await capabilities()).fields ? `${VERSION} fields` : VERSION
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

export async function updateDocument (id: string, input: { title?: string, slug?: string, status?: DocStatus }, lockVersion: number): Promise<DocMeta> {
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
    `query($d: ID!, $first: Int) { versions(documentId: $d, first: $first) { edges { node { ${await versionFields()} } } } }`,
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
    `mutation($d: ID!, $l: String!) { saveVersion(documentId: $d, label: $l) { ${await versionFields()} } }`, { d: documentId, l: label })).saveVersion
}

export async function restoreVersion (versionId: string): Promise<Version> {
  return (await gql<{ restoreVersion: Version }>(
    `mutation($v: ID!) { restoreVersion(versionId: $v) { ${VERSION} } }`, { v: versionId })).restoreVersion
}

export async function publish (documentId: string): Promise<DocMeta> {
  return (await gql<{ publish: DocMeta }>(`mutation($d: ID!) { publish(documentId: $d) { ${await docFields()} } }`, { d: documentId })).publish
}

/** The fields plugins computed for the document's newest version (`{}` before the first). */
export async function documentFields (id: string): Promise<Fields> {
  const r = await gql<{ document: { fields: Fields | null } | null }>('query($id: ID) { document(id: $id, draft: true) { fields } }', { id })
  return r.document?.fields ?? {}
}

export async function unpublish (documentId: string): Promise<DocMeta> {
  return (await gql<{ unpublish: DocMeta }>(`mutation($d: ID!) { unpublish(documentId: $d) { ${await docFields()} } }`, { d: documentId })).unpublish
}

export interface PresenceEntry { userId: string | null, displayName: string, readOnly: boolean, clientId: string | null }

export async function presence (documentId: string): Promise<PresenceEntry[]> {
  return (await gql<{ presence: PresenceEntry[] }>(
    'query($d: ID!) { presence(documentId: $d) { userId displayName readOnly clientId } }', { d: documentId })).presence
}

// Plugins (admins only; anyone else gets FORBIDDEN)

export type PluginStatus = 'ENABLED' | 'DISABLED' | 'FAILING' | 'BROKEN'
export type PluginHook = 'BEFORE_SAVE_VERSION' | 'BEFORE_PUBLISH' | 'AFTER_PUBLISH' | 'ON_METADATA_CHANGE' | 'RENDER' | 'ENRICH'
export type PluginCapability = 'CONFIG' | 'KV' | 'CONTENT'
export type SettingType = 'string' | 'integer' | 'number' | 'boolean' | 'array'

export interface PluginSetting {
  key: string
  type: SettingType
  default: unknown
  description: string | null
  minimum: number | null
  maximum: number | null
}

export interface Plugin {
  name: string
  /** null for a plugin whose files failed to load (BROKEN) */
  version: string | null
  description: string | null
  source: string | null
  sha256: string | null
  hooks: PluginHook[]
  priority: number | null
  status: PluginStatus
  error: string | null
  disabledReason: string | null
  requestedCapabilities: PluginCapability[]
  grantedCapabilities: PluginCapability[]
  /** the settings an admin set; the schema's defaults apply to the rest */
  config: Record<string, unknown> | null
  configSchema: PluginSetting[]
  calls: number
  rejections: number
  failures: number
  lastFailure: string | null
  p50Ms: number | null
  p99Ms: number | null
  fuelUsed: number
}

const PLUGIN = 'name version description source sha256 hooks priority status error disabledReason requestedCapabilities grantedCapabilities config configSchema { key type default description minimum maximum } calls rejections failures lastFailure p50Ms p99Ms fuelUsed'

export async function listPlugins (): Promise<Plugin[]> {
  return (await gql<{ plugins: Plugin[] }>(`{ plugins { ${PLUGIN} } }`)).plugins
}

// The mutations answer with the whole plugin, so its card shows what the server stored.

export async function setPluginEnabled (name: string, enabled: boolean): Promise<Plugin> {
  return (await gql<{ setPluginEnabled: Plugin }>(
    `mutation($n: String!, $e: Boolean!) { setPluginEnabled(name: $n, enabled: $e) { ${PLUGIN} } }`, { n: name, e: enabled })).setPluginEnabled
}

export async function setPluginConfig (name: string, config: Record<string, unknown>): Promise<Plugin> {
  return (await gql<{ setPluginConfig: Plugin }>(
    `mutation($n: String!, $c: JSON!) { setPluginConfig(name: $n, config: $c) { ${PLUGIN} } }`, { n: name, c: config })).setPluginConfig
}

export async function setPluginGrants (name: string, capabilities: PluginCapability[]): Promise<Plugin> {
  return (await gql<{ setPluginGrants: Plugin }>(
    `mutation($n: String!, $caps: [Capability!]!) { setPluginGrants(name: $n, capabilities: $caps) { ${PLUGIN} } }`, { n: name, caps: capabilities })).setPluginGrants
}

// Search (everyone: each sees what they may read); the index's status and rebuild are admins'

export type SearchHitKind = 'VERSION' | 'LIVE'

/** The `SearchFilter` input; dates are ISO 8601. */
export interface SearchFilter {
  documentId?: string
  author?: string
  status?: DocStatus
  from?: string
  to?: string
  latestOnly?: boolean
  publishedOnly?: boolean
  /** true: only live drafts; false: only saved versions; absent: both */
  live?: boolean
}

export interface SearchHit {
  kind: SearchHitKind
  document: { id: string, title: string, slug: string, status: DocStatus }
  /** null for a live draft */
  versionId: string | null
  versionNumber: number | null
  title: string
  /** HTML-escaped by the server, `<mark>` around the matches: safe to render */
  titleHtml: string
  label: string
  author: { id: string, displayName: string } | null
  createdAt: string
  score: number
  /** up to two fragments, HTML-escaped by the server with `<mark>`: safe to render */
  snippets: string[]
  published: boolean
  myAccess: Access
}

export interface SearchPage { totalCount: number, hits: SearchHit[], hasNextPage: boolean, endCursor: string | null }

const HIT = 'kind document { id title slug status } versionId versionNumber title titleHtml label author { id displayName } createdAt score snippets published myAccess'

/** One page of hits. A query the server cannot parse is a VALIDATION error on the field `query`. */
export async function search (query: string, filter: SearchFilter | null, after: string | null, first = 20): Promise<SearchPage> {
  const r = await gql<{ search: { totalCount: number, edges: { node: SearchHit }[], pageInfo: { hasNextPage: boolean, endCursor: string | null } } }>(
    `query($q: String!, $f: SearchFilter, $first: Int, $after: String) {
      search(query: $q, filter: $f, first: $first, after: $after) { totalCount edges { node { ${HIT} } } pageInfo { hasNextPage endCursor } } }`,
    { q: query, f: filter, first, after })
  return { totalCount: r.search.totalCount, hits: r.search.edges.map((e) => e.node), hasNextPage: r.search.pageInfo.hasNextPage, endCursor: r.search.pageInfo.endCursor }
}

export interface SearchStatus {
  enabled: boolean
  index: string
  language: string
  entries: number
  sizeBytes: number
  watermark: number
  /** versions saved but not indexed yet */
  behind: number
  /** live drafts waiting for editing to pause */
  livePending: number
  lastCommit: string | null
  /** while a rebuild runs */
  rebuild: { done: number, total: number } | null
  error: string | null
}

const SEARCH_STATUS = 'enabled index language entries sizeBytes watermark behind livePending lastCommit rebuild { done total } error'

export async function searchStatus (): Promise<SearchStatus> {
  return (await gql<{ searchStatus: SearchStatus }>(`{ searchStatus { ${SEARCH_STATUS} } }`)).searchStatus
}

/** Starts rebuilding the index in the background (BUSY while one runs); follow it with `searchStatus`. */
export async function reindex (): Promise<SearchStatus> {
  return (await gql<{ reindex: SearchStatus }>(`mutation { reindex { ${SEARCH_STATUS} } }`)).reindex
}
