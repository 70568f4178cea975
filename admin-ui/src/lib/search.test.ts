import { describe, expect, it } from 'vitest'
import {
  EMPTY_SEARCH, MAX_IDLE_POLLS, addPage, formatBytes, hitKey, kindLabel, openPath, parseSearchParams, rebuildFraction,
  rebuildStep, resultCount, safeMarkHtml, searchUrl, searchable, startWatch, toFilter, type SearchState
} from './search'
import type { SearchHit } from './api'

const hit = (over: Partial<SearchHit> = {}): SearchHit => ({
  kind: 'VERSION',
  document: { id: 'd1', title: 'Launch notes', slug: 'launch-notes', status: 'DRAFT' },
  versionId: '7',
  versionNumber: 3,
  title: 'Launch notes',
  titleHtml: 'Launch notes',
  label: 'First draft',
  author: { id: 'u1', displayName: 'Ada' },
  createdAt: '2026-01-10T12:00:00Z',
  score: 1,
  snippets: [],
  published: false,
  myAccess: 'WRITE',
  ...over
})

const state = (over: Partial<SearchState> = {}): SearchState => ({ ...EMPTY_SEARCH, ...over })

describe('search URL', () => {
  it('round-trips every filter through the query string', () => {
    const s = state({ q: '"launch notes" OR coll*', scope: 'versions', latest: true, status: 'IN_REVIEW', from: '2026-01-02', to: '2026-02-28', doc: 'abc-123' })
    const url = searchUrl(s)
    expect(url.startsWith('/search?q=')).toBe(true)
    expect(parseSearchParams(url.slice('/search'.length))).toEqual(s)
  })
  it('leaves defaults out, so the plain page is /search', () => {
    expect(searchUrl(EMPTY_SEARCH)).toBe('/search')
    expect(searchUrl(state({ q: 'a b' }))).toBe('/search?q=a+b')
    // "newest version only" means nothing for live drafts: not in the URL then
    expect(searchUrl(state({ q: 'x', scope: 'live', latest: true }))).toBe('/search?q=x&scope=live')
  })
  it('falls back to the defaults for what it does not know', () => {
    expect(parseSearchParams('?scope=everything&status=LOST&latest=yes&from=2026-02-30&to=tomorrow&doc=')).toEqual(EMPTY_SEARCH)
    expect(parseSearchParams('')).toEqual(EMPTY_SEARCH)
    expect(parseSearchParams('?q=%22unclosed').q).toBe('"unclosed')
  })
  it('needs a query with something in it', () => {
    expect(searchable(state({ q: '   ' }))).toBe(false)
    expect(searchable(state({ q: ' x ' }))).toBe(true)
  })
})

describe('search filter', () => {
  it('is null when nothing narrows the search', () => {
    expect(toFilter(state({ q: 'x' }))).toBeNull()
  })
  it('maps each scope', () => {
    expect(toFilter(state({ scope: 'versions' }))).toEqual({ live: false })
    expect(toFilter(state({ scope: 'live' }))).toEqual({ live: true })
    expect(toFilter(state({ scope: 'published' }))).toEqual({ publishedOnly: true })
    expect(toFilter(state({ scope: 'all', latest: true }))).toEqual({ latestOnly: true })
    expect(toFilter(state({ scope: 'live', latest: true }))).toEqual({ live: true })
  })
  it('takes whole local days: from their start to their last millisecond', () => {
    const f = toFilter(state({ from: '2026-01-02', to: '2026-01-02', status: 'PUBLISHED', doc: 'd1' }))
    expect(f).toEqual({
      documentId: 'd1',
      status: 'PUBLISHED',
      from: new Date(2026, 0, 2).toISOString(),
      to: new Date(new Date(2026, 0, 3).getTime() - 1).toISOString()
    })
    // the end of a month rolls over
    expect(toFilter(state({ to: '2026-01-31' }))?.to).toBe(new Date(new Date(2026, 1, 1).getTime() - 1).toISOString())
  })
})

describe('search results', () => {
  it('appends pages, a hit once even if the index moved between them', () => {
    const first = addPage(null, { totalCount: 3, hits: [hit({ versionId: '1' }), hit({ versionId: '2' })], hasNextPage: true, endCursor: 'c2' })
    expect(first.next).toBe('c2')
    expect(first.total).toBe(3)
    const both = addPage(first, { totalCount: 3, hits: [hit({ versionId: '2' }), hit({ versionId: '3' })], hasNextPage: false, endCursor: 'c4' })
    expect(both.hits.map((h) => h.versionId)).toEqual(['1', '2', '3'])
    expect(both.next).toBeNull()
  })
  it('tells a version from the live draft of the same document', () => {
    expect(hitKey(hit())).toBe('version:7')
    expect(hitKey(hit({ kind: 'LIVE', versionId: null, versionNumber: null }))).toBe('live:d1')
  })
  it('labels hits and says how many', () => {
    expect(kindLabel(hit())).toBe('Version 3 “First draft”')
    expect(kindLabel(hit({ label: '  ' }))).toBe('Version 3')
    expect(kindLabel(hit({ kind: 'LIVE', versionNumber: null, label: '' }))).toBe('Live draft')
    expect(resultCount(1)).toBe('1 result')
    expect(resultCount(0)).toBe('0 results')
    expect(resultCount(1234)).toBe('1,234 results')
  })
  it('opens a version in the history, a live draft in the editor', () => {
    expect(openPath(hit())).toBe('/documents/d1?version=3')
    expect(openPath(hit({ kind: 'LIVE', versionNumber: null }))).toBe('/documents/d1')
  })
  it('keeps only <mark> of the highlighted HTML', () => {
    expect(safeMarkHtml('a <mark>word</mark> &amp; &lt;b&gt;')).toBe('a <mark>word</mark> &amp; &lt;b&gt;')
    expect(safeMarkHtml('<img src=x onerror=alert(1)><mark class="x">y</mark>')).toBe('&lt;img src=x onerror=alert(1)>&lt;mark class="x">y</mark>')
  })
})

describe('index status', () => {
  it('formats sizes', () => {
    expect(formatBytes(512)).toBe('512 B')
    expect(formatBytes(3753)).toBe('3.7 KiB')
    expect(formatBytes(50 * 1024 * 1024)).toBe('50 MiB')
  })
  it('knows the rebuild’s progress once it has a size', () => {
    expect(rebuildFraction({ rebuild: null })).toBeNull()
    expect(rebuildFraction({ rebuild: { done: 0, total: 0 } })).toBeNull()
    expect(rebuildFraction({ rebuild: { done: 30, total: 120 } })).toBe(0.25)
  })
  it('follows a rebuild until it ends, though reindex answers before it reports progress', () => {
    const before = { lastCommit: 't0', error: null }
    let w = startWatch(before)
    // reindex's answer and the first polls: no progress yet, nothing changed
    let step = rebuildStep(w, { rebuild: null, ...before })
    expect(step.state).toBe('running')
    if (step.state === 'running') w = step.watch
    step = rebuildStep(w, { rebuild: { done: 1, total: 3 }, ...before })
    expect(step.state).toBe('running')
    if (step.state === 'running') w = step.watch
    expect(w.seenRunning).toBe(true)
    expect(rebuildStep(w, { rebuild: null, lastCommit: 't0', error: null })).toEqual({ state: 'finished', error: null, confirmed: true })
  })
  it('sees a rebuild that ended between two polls by its commit, and a failure by its error', () => {
    const w = startWatch({ lastCommit: 't0', error: null })
    expect(rebuildStep(w, { rebuild: null, lastCommit: 't1', error: null })).toEqual({ state: 'finished', error: null, confirmed: true })
    expect(rebuildStep(w, { rebuild: null, lastCommit: 't0', error: 'rebuild: disk full' })).toEqual({ state: 'finished', error: 'rebuild: disk full', confirmed: true })
    // an error that was there before is not this rebuild's
    const old = startWatch({ lastCommit: 't0', error: 'earlier' })
    expect(rebuildStep(old, { rebuild: null, lastCommit: 't0', error: 'earlier' }).state).toBe('running')
  })
  it('stops waiting for a rebuild that never shows', () => {
    let w = startWatch(null)
    for (let i = 1; i < MAX_IDLE_POLLS; i++) {
      const step = rebuildStep(w, { rebuild: null, lastCommit: null, error: null })
      expect(step.state).toBe('running')
      if (step.state === 'running') w = step.watch
    }
    expect(rebuildStep(w, { rebuild: null, lastCommit: null, error: null })).toEqual({ state: 'finished', error: null, confirmed: false })
  })
})
