// The Search page's state without React: the query and filters as they live in the URL
// (`/search?q=…&scope=…`), the GraphQL filter they become, paging through hits, and the
// index rebuild's progress.

import { STATUSES, type DocStatus, type SearchFilter, type SearchHit, type SearchStatus } from './api'

export type Scope = 'all' | 'versions' | 'live' | 'published'

export const SCOPES: { value: Scope, label: string }[] = [
  { value: 'all', label: 'All' },
  { value: 'versions', label: 'Saved versions' },
  { value: 'live', label: 'Live drafts' },
  { value: 'published', label: 'Published only' }
]

export interface SearchState {
  /** the query as typed */
  q: string
  scope: Scope
  /** only each document's newest version */
  latest: boolean
  status: DocStatus | null
  /** days, `YYYY-MM-DD` (what `<input type="date">` holds), or '' */
  from: string
  to: string
  /** only this document's versions and draft */
  doc: string | null
}

export const EMPTY_SEARCH: SearchState = { q: '', scope: 'all', latest: false, status: null, from: '', to: '', doc: null }

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/

/** A `YYYY-MM-DD` that is a real day, or ''. */
function day (v: string | null): string {
  const m = v ? DAY.exec(v) : null
  if (!m) return ''
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]))
  return d.getFullYear() === Number(m[1]) && d.getMonth() === Number(m[2]) - 1 && d.getDate() === Number(m[3]) ? v! : ''
}

/** The state in a URL's query string (`?q=…`); anything unknown falls back to the default. */
export function parseSearchParams (search: string): SearchState {
  const p = new URLSearchParams(search)
  const scope = p.get('scope')
  const status = p.get('status')
  return {
    q: p.get('q') ?? '',
    scope: SCOPES.some((s) => s.value === scope) ? scope as Scope : 'all',
    latest: p.get('latest') === '1',
    status: (STATUSES as string[]).includes(status ?? '') ? status as DocStatus : null,
    from: day(p.get('from')),
    to: day(p.get('to')),
    doc: p.get('doc') || null
  }
}

/** The page's URL for a state: defaults left out, always in the same order (links compare equal). */
export function searchUrl (s: SearchState): string {
  const p = new URLSearchParams()
  if (s.q) p.set('q', s.q)
  if (s.scope !== 'all') p.set('scope', s.scope)
  if (s.latest && latestApplies(s.scope)) p.set('latest', '1')
  if (s.status) p.set('status', s.status)
  if (s.from) p.set('from', s.from)
  if (s.to) p.set('to', s.to)
  if (s.doc) p.set('doc', s.doc)
  const qs = p.toString()
  return qs ? `/search?${qs}` : '/search'
}

/** "Newest version only" means nothing for live drafts, and the published version is one per document already. */
export const latestApplies = (scope: Scope): boolean => scope === 'all' || scope === 'versions'

/** The start of a local day, as the server's DateTime. */
function startOfDay (d: string): string {
  const [y, m, dd] = d.split('-').map(Number)
  return new Date(y, m - 1, dd).toISOString()
}

/** The last millisecond of a local day: `to` includes the day picked. */
function endOfDay (d: string): string {
  const [y, m, dd] = d.split('-').map(Number)
  return new Date(new Date(y, m - 1, dd + 1).getTime() - 1).toISOString()
}

/** The GraphQL `SearchFilter` for a state (null when nothing narrows the search). */
export function toFilter (s: SearchState): SearchFilter | null {
  const f: SearchFilter = {}
  if (s.doc) f.documentId = s.doc
  if (s.status) f.status = s.status
  if (s.from) f.from = startOfDay(s.from)
  if (s.to) f.to = endOfDay(s.to)
  if (s.scope === 'versions') f.live = false
  if (s.scope === 'live') f.live = true
  if (s.scope === 'published') f.publishedOnly = true
  if (s.latest && latestApplies(s.scope)) f.latestOnly = true
  return Object.keys(f).length > 0 ? f : null
}

/** Whether a state asks anything of the server (an empty query is refused). */
export const searchable = (s: SearchState): boolean => s.q.trim() !== ''

/** What a hit is: one saved version of a document, or its live draft. */
export const hitKey = (h: Pick<SearchHit, 'kind' | 'versionId' | 'document'>): string =>
  h.kind === 'LIVE' ? `live:${h.document.id}` : `version:${h.versionId}`

export interface Results {
  hits: SearchHit[]
  total: number
  /** the cursor to load the next page after; null on the last page */
  next: string | null
}

export interface HitPage { totalCount: number, hits: SearchHit[], hasNextPage: boolean, endCursor: string | null }

/** The first page (`prev` null) or the next one appended, without a hit twice (the index moved between pages). */
export function addPage (prev: Results | null, page: HitPage): Results {
  const hits = prev ? [...prev.hits] : []
  const seen = new Set(hits.map(hitKey))
  for (const h of page.hits) {
    const k = hitKey(h)
    if (!seen.has(k)) { seen.add(k); hits.push(h) }
  }
  return { hits, total: page.totalCount, next: page.hasNextPage ? page.endCursor : null }
}

export const resultCount = (n: number): string => `${n.toLocaleString('en')} ${n === 1 ? 'result' : 'results'}`

/** The badge of a hit: `Version 3 “Launch”`, `Version 3` without a label, or `Live draft`. */
export function kindLabel (h: Pick<SearchHit, 'kind' | 'versionNumber' | 'label'>): string {
  if (h.kind === 'LIVE') return 'Live draft'
  const label = h.label.trim()
  return label ? `Version ${h.versionNumber} “${label}”` : `Version ${h.versionNumber}`
}

/** Where Open goes: the editor, with the history sidebar on the version for a saved one. */
export function openPath (h: Pick<SearchHit, 'kind' | 'versionNumber' | 'document'>): string {
  const doc = `/documents/${encodeURIComponent(h.document.id)}`
  return h.kind === 'VERSION' && h.versionNumber != null ? `${doc}?version=${h.versionNumber}` : doc
}

/** The query syntax, as the help under the query box lists it. */
export const SYNTAX: { example: string, meaning: string }[] = [
  { example: 'launch notes', meaning: 'every word must match' },
  { example: '"launch notes"', meaning: 'the exact phrase' },
  { example: 'launch OR release', meaning: 'either word (also AND, NOT)' },
  { example: 'launch -draft', meaning: 'without a word (same as NOT draft)' },
  { example: '(launch OR release) notes', meaning: 'group with parentheses' },
  { example: 'coll*', meaning: 'words starting with “coll”' },
  { example: 'colaborate~', meaning: 'tolerate a typo' },
  { example: 'title:launch', meaning: 'only in titles (also label:, body:)' }
]

export function formatBytes (n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`
}

/** A rebuild's progress, 0 to 1; null while its size is not known yet. */
export function rebuildFraction (s: Pick<SearchStatus, 'rebuild'>): number | null {
  const r = s.rebuild
  if (!r || r.total <= 0) return null
  return Math.min(1, Math.max(0, r.done / r.total))
}

/**
 * Following a rebuild the page started. `reindex` answers before the rebuild has reported
 * any progress (its `rebuild` is null), and a small index can be rebuilt between two polls,
 * so "finished" is: no rebuild running now, after one was seen running or once the index
 * committed since the click (`lastCommit` moved) or reported a rebuild error.
 */
export interface RebuildWatch {
  /** `lastCommit` and `error` when the button was pressed */
  startCommit: string | null
  startError: string | null
  /** a poll saw `rebuild` non-null */
  seenRunning: boolean
  /** polls that saw no rebuild and no change */
  idlePolls: number
}

export type RebuildStep =
  | { state: 'running', watch: RebuildWatch }
  /** `confirmed` false: the page stopped waiting without having seen the rebuild end */
  | { state: 'finished', error: string | null, confirmed: boolean }

export const startWatch = (before: Pick<SearchStatus, 'lastCommit' | 'error'> | null): RebuildWatch =>
  ({ startCommit: before?.lastCommit ?? null, startError: before?.error ?? null, seenRunning: false, idlePolls: 0 })

/** Polls without a sign of the rebuild after which the page stops waiting for one. */
export const MAX_IDLE_POLLS = 20

export function rebuildStep (w: RebuildWatch, now: Pick<SearchStatus, 'rebuild' | 'lastCommit' | 'error'>): RebuildStep {
  if (now.rebuild) return { state: 'running', watch: { ...w, seenRunning: true, idlePolls: 0 } }
  const failed = now.error !== null && now.error !== w.startError
  if (w.seenRunning || failed || now.lastCommit !== w.startCommit) return { state: 'finished', error: failed ? now.error : null, confirmed: true }
  if (w.idlePolls + 1 >= MAX_IDLE_POLLS) return { state: 'finished', error: null, confirmed: false }
  return { state: 'running', watch: { ...w, idlePolls: w.idlePolls + 1 } }
}

/**
 * The server's highlighted HTML (`titleHtml`, snippets), kept to what it promises: text,
 * entities and `<mark>`. The server escapes everything else already; any other `<` is
 * escaped here too, so a server bug cannot put markup into the page.
 */
export function safeMarkHtml (html: string): string {
  return html.replace(/<(?!\/?mark>)/g, '&lt;')
}
