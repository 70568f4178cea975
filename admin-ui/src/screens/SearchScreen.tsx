import { useCallback, useEffect, useId, useMemo, useRef, useState } from 'react'
import * as api from '../lib/api'
import { ApiError, errorText, fieldMessage } from '../lib/errors'
import { relativeTime } from '../lib/docList'
import { navigate } from '../lib/router'
import { isMac, isTyping, matches } from '../lib/shortcuts'
import {
  EMPTY_SEARCH, SCOPES, SYNTAX, addPage, formatBytes, hitKey, kindLabel, latestApplies, openPath, parseSearchParams,
  rebuildFraction, rebuildStep, resultCount, safeMarkHtml, searchUrl, searchable, startWatch, toFilter,
  type RebuildWatch, type Results, type SearchState
} from '../lib/search'

const PAGE = 20
/** Typing pauses this long before the search runs (Enter runs it at once). */
const DEBOUNCE_MS = 250
/** How often the index status is asked while a rebuild runs. */
const POLL_MS = 500

/**
 * Full-text search over every saved version and live draft the person may read. The
 * query and filters live in the URL (`/search?q=…&scope=…`), so a search can be linked
 * and Back and Forward work; typing replaces the URL rather than adding history.
 */
export function SearchScreen ({ user, query }: { user: api.User, query: string }) {
  const state = useMemo(() => parseSearchParams(query), [query])
  const [draft, setDraft] = useState(state.q)
  // the query the URL had at the last render: when the URL changes under the page (Back,
  // a link), the box shows its query
  const [urlQ, setUrlQ] = useState(state.q)
  if (state.q !== urlQ) {
    setUrlQ(state.q)
    setDraft(state.q)
  }
  const [available, setAvailable] = useState(true)
  const [results, setResults] = useState<Results | null>(null)
  const [loading, setLoading] = useState(false)
  const [loadingMore, setLoadingMore] = useState(false)
  const [queryError, setQueryError] = useState('')
  const [error, setError] = useState('')
  // bumped by Enter: the same search runs again (the index may have caught up)
  const [run, setRun] = useState(0)
  // which search the shown results belong to (a late "Load more" page of another is dropped)
  const current = useRef('')
  const input = useRef<HTMLInputElement>(null)
  const id = useId()

  useEffect(() => {
    let stale = false
    api.capabilities().then((c) => { if (!stale) setAvailable(c.search) }, () => {})
    return () => { stale = true }
  }, [])

  const update = useCallback((next: Partial<SearchState>) => {
    navigate(searchUrl({ ...state, ...next }), { replace: true })
  }, [state])

  // typing: search once it pauses
  useEffect(() => {
    if (draft === state.q) return
    const t = setTimeout(() => update({ q: draft }), DEBOUNCE_MS)
    return () => clearTimeout(t)
  }, [draft, state.q, update])

  // `/` focuses the query box (elsewhere the app shell brings you here)
  useEffect(() => {
    const mac = isMac()
    const onKey = (e: KeyboardEvent) => {
      if (isTyping(e.target) || !matches('/', e, mac)) return
      e.preventDefault()
      input.current?.focus()
      input.current?.select()
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [])

  // the search itself: the first page of hits for what the URL says
  useEffect(() => {
    const key = `${searchUrl(state)}#${run}`
    current.current = key
    setError('')
    if (!searchable(state) || !available) {
      setResults(null)
      setQueryError('')
      setLoading(false)
      return
    }
    let stale = false
    setLoading(true)
    api.search(state.q.trim(), toFilter(state), null, PAGE)
      .then((page) => {
        if (stale) return
        setResults(addPage(null, page))
        setQueryError('')
      })
      .catch((e) => {
        if (stale) return
        setResults(null)
        // a query the server cannot parse is said next to the box, with where it went wrong
        if (e instanceof ApiError && e.code === 'VALIDATION' && e.field === 'query') setQueryError(fieldMessage(e))
        else { setQueryError(''); setError(errorText(e)) }
      })
      .finally(() => { if (!stale) setLoading(false) })
    return () => { stale = true }
  }, [state, run, available])

  const loadMore = async () => {
    if (!results?.next) return
    const key = current.current
    setLoadingMore(true)
    try {
      const page = await api.search(state.q.trim(), toFilter(state), results.next, PAGE)
      if (current.current === key) setResults((prev) => addPage(prev, page))
    } catch (e) {
      if (current.current === key) setError(errorText(e))
    } finally {
      setLoadingMore(false)
    }
  }

  const submit = (e: React.FormEvent) => {
    e.preventDefault()
    update({ q: draft })
    setRun((n) => n + 1)
  }

  const filtered = state.scope !== 'all' || state.latest || state.status !== null || state.from !== '' || state.to !== '' || state.doc !== null
  const errorId = `${id}-query-error`
  const helpId = `${id}-help`

  return (
    <div className={user.role === 'ADMIN' ? 'search-layout with-aside' : 'search-layout'}>
      <section className="search" aria-labelledby={`${id}-title`}>
        <h1 id={`${id}-title`}>Search</h1>
        {!available && <p className="muted">Search is not available on this server yet.</p>}
        <form role="search" className="search-form" onSubmit={submit}>
          <div className="searchbox search-query">
            <input
              ref={input}
              id={`${id}-q`}
              type="search"
              name="q"
              aria-label="Search text and history"
              placeholder="Search every version and live draft"
              autoFocus
              autoComplete="off"
              spellCheck={false}
              value={draft}
              aria-invalid={queryError ? true : undefined}
              aria-describedby={[queryError ? errorId : '', helpId].filter(Boolean).join(' ')}
              onChange={(e) => setDraft(e.target.value)}
            />
            <kbd aria-hidden="true">/</kbd>
          </div>
          <button className="primary" type="submit" disabled={!available}>Search</button>
        </form>
        {queryError && <p className="field-error query-error" id={errorId} role="alert">{queryError}</p>}
        <details className="search-help" id={helpId}>
          <summary>Query syntax</summary>
          <table>
            <tbody>
              {SYNTAX.map((s) => <tr key={s.example}><td><code>{s.example}</code></td><td>{s.meaning}</td></tr>)}
            </tbody>
          </table>
          <p className="muted">A saved version is searchable within a second; a live draft about two seconds after editing pauses.</p>
        </details>

        <Filters state={state} update={update} />

        {error && <p className="error" role="alert">{error}</p>}
        <div className="search-summary" role="status" aria-live="polite">
          {loading && <span className="muted" aria-busy="true">Searching…</span>}
          {!loading && results && <span className="search-count">{resultCount(results.total)}</span>}
        </div>
        {!searchable(state) && available && (
          <p className="empty search-empty">Type words to search the text, titles and labels of every version and live draft you can read.</p>
        )}
        {results && results.total === 0 && !loading && (
          <p className="empty search-empty">No results for “{state.q.trim()}”.{filtered ? ' Try fewer filters.' : ''}</p>
        )}
        {results && results.hits.length > 0 && (
          <ol className={loading ? 'hits loading' : 'hits'} aria-label="Results" aria-busy={loading}>
            {results.hits.map((h) => <Hit key={hitKey(h)} hit={h} />)}
          </ol>
        )}
        {results?.next && (
          <div className="pager">
            <button onClick={() => void loadMore()} disabled={loadingMore || loading} aria-busy={loadingMore}>
              {loadingMore ? 'Loading…' : `Load more (${(results.total - results.hits.length).toLocaleString('en')} left)`}
            </button>
          </div>
        )}
      </section>
      {user.role === 'ADMIN' && available && <IndexPanel />}
    </div>
  )
}

function Filters ({ state, update }: { state: SearchState, update: (next: Partial<SearchState>) => void }) {
  const id = useId()
  const [docTitle, setDocTitle] = useState<string | null>(null)
  useEffect(() => {
    setDocTitle(null)
    if (!state.doc) return
    let stale = false
    api.getDocument(state.doc).then((d) => { if (!stale) setDocTitle(d.title || 'Untitled') }, () => { if (!stale) setDocTitle('') })
    return () => { stale = true }
  }, [state.doc])
  const any = state.scope !== 'all' || state.latest || state.status !== null || state.from !== '' || state.to !== '' || state.doc !== null

  return (
    <div className="search-filters" role="group" aria-label="Filters">
      <div className="segmented" role="group" aria-label="Scope">
        {SCOPES.map((s) => (
          <button key={s.value} type="button" aria-pressed={state.scope === s.value} onClick={() => update({ scope: s.value })}>{s.label}</button>
        ))}
      </div>
      <label className="check" title={latestApplies(state.scope) ? 'One hit per document at most: its newest version' : 'Only with all hits or saved versions'}>
        <input type="checkbox" checked={state.latest && latestApplies(state.scope)} disabled={!latestApplies(state.scope)} onChange={(e) => update({ latest: e.target.checked })} />
        Newest version only
      </label>
      <label className="inline-field" htmlFor={`${id}-status`}>
        Status
        <select id={`${id}-status`} value={state.status ?? ''} onChange={(e) => update({ status: (e.target.value || null) as api.DocStatus | null })}>
          <option value="">Any</option>
          {api.STATUSES.map((s) => <option key={s} value={s}>{api.STATUS_LABEL[s]}</option>)}
        </select>
      </label>
      <label className="inline-field" htmlFor={`${id}-from`}>
        From
        <input id={`${id}-from`} type="date" value={state.from} max={state.to || undefined} onChange={(e) => update({ from: e.target.value })} />
      </label>
      <label className="inline-field" htmlFor={`${id}-to`}>
        To
        <input id={`${id}-to`} type="date" value={state.to} min={state.from || undefined} onChange={(e) => update({ to: e.target.value })} />
      </label>
      {state.doc && (
        <span className="chip" data-testid="document-filter">
          In {docTitle === null ? 'one document' : docTitle ? `“${docTitle}”` : 'one document'}
          <button type="button" className="chip-remove" aria-label="Search all documents" onClick={() => update({ doc: null })}>×</button>
        </span>
      )}
      {any && <button type="button" className="link-btn" onClick={() => update({ ...EMPTY_SEARCH, q: state.q })}>Clear filters</button>}
    </div>
  )
}

function Hit ({ hit: h }: { hit: api.SearchHit }) {
  const href = openPath(h)
  const kind = kindLabel(h)
  const readable = h.myAccess !== 'NONE'
  return (
    <li className="hit card" data-kind={h.kind} data-version={h.versionNumber ?? undefined} data-document={h.document.id}>
      <div className="hit-head">
        {/* escaped by the server; only <mark> is kept (safeMarkHtml) */}
        <h2 className="hit-title" dangerouslySetInnerHTML={{ __html: safeMarkHtml(h.titleHtml) || 'Untitled' }} />
        <span className={`badge hit-kind kind-${h.kind.toLowerCase()}`}>{kind}</span>
        {h.published && <span className="badge status-published">Published</span>}
        <span className={`badge status-${h.document.status.toLowerCase()}`} title="The document’s status now">{api.STATUS_LABEL[h.document.status]}</span>
      </div>
      <p className="hit-meta">
        {h.document.title !== h.title && <>Now “{h.document.title || 'Untitled'}” · </>}
        {h.kind === 'LIVE' ? 'Edited' : (h.author?.displayName ?? 'Someone')}
        {' · '}
        <time dateTime={h.createdAt} title={new Date(h.createdAt).toLocaleString()}>{relativeTime(h.createdAt)}</time>
      </p>
      {h.snippets.map((s, i) => <p key={i} className="snippet" dangerouslySetInnerHTML={{ __html: safeMarkHtml(s) }} />)}
      <div className="hit-actions">
        {readable
          ? <a className="button" href={href} onClick={(e) => { e.preventDefault(); navigate(href) }} aria-label={`Open ${kind} of “${h.title || 'Untitled'}”`}>Open</a>
          : <span className="muted">Published content; the document is not shared with you.</span>}
      </div>
    </li>
  )
}

/** Admins: where this node's index stands, and a rebuild with its progress. */
function IndexPanel () {
  const [status, setStatus] = useState<api.SearchStatus | null>(null)
  const [hidden, setHidden] = useState(false)
  const [error, setError] = useState('')
  const [watch, setWatch] = useState<RebuildWatch | null>(null)
  const [starting, setStarting] = useState(false)
  const [done, setDone] = useState<{ text: string, ok: boolean } | null>(null)
  const id = useId()

  const load = useCallback(async () => {
    setError('')
    try {
      setStatus(await api.searchStatus())
    } catch (e) {
      if (e instanceof ApiError && e.code === 'FORBIDDEN') setHidden(true)
      else setError(errorText(e))
    }
  }, [])

  useEffect(() => { void load() }, [load])

  // follow a rebuild: poll until it ends (every answer is a new watch, so the next poll follows)
  useEffect(() => {
    if (!watch) return
    let stale = false
    const t = setTimeout(() => {
      api.searchStatus().then((s) => {
        if (stale) return
        setStatus(s)
        const step = rebuildStep(watch, s)
        if (step.state === 'running') { setWatch(step.watch); return }
        setWatch(null)
        if (step.error) setDone({ text: `The rebuild failed: ${step.error}`, ok: false })
        else if (step.confirmed) setDone({ text: `Index rebuilt: ${s.entries.toLocaleString('en')} entries.`, ok: true })
        else setDone({ text: 'The rebuild did not report its progress; the figures above are the index’s now.', ok: true })
      }, (e) => {
        if (stale) return
        setWatch(null)
        setError(`Lost track of the rebuild: ${errorText(e)}`)
      })
    }, POLL_MS)
    return () => { stale = true; clearTimeout(t) }
  }, [watch])

  const rebuild = async () => {
    setError('')
    setDone(null)
    setStarting(true)
    const w = startWatch(status)
    try {
      const s = await api.reindex()
      setStatus(s)
      // the answer may not show the rebuild yet: the polls find it (see rebuildStep)
      setWatch(s.rebuild ? { ...w, seenRunning: true } : w)
    } catch (e) {
      if (e instanceof ApiError && e.code === 'BUSY' && status?.enabled) {
        // one is under way already (another admin, another tab): follow it
        setError(e.serverMessage ? `${e.serverMessage.charAt(0).toUpperCase()}${e.serverMessage.slice(1)}; following it.` : errorText(e))
        setWatch(w)
      } else {
        setError(errorText(e))
      }
    } finally {
      setStarting(false)
    }
  }

  if (hidden) return null
  const running = watch !== null
  const fraction = status ? rebuildFraction(status) : null
  return (
    <aside className="index-panel card" aria-labelledby={`${id}-title`}>
      <div className="index-head">
        <h2 id={`${id}-title`}>Index</h2>
        <button type="button" onClick={() => void load()} disabled={running}>Refresh</button>
      </div>
      {!status && !error && <p className="muted" aria-busy="true">Loading…</p>}
      {status && (
        <>
          {!status.enabled && <p className="warn">Search is turned off on this server (<code>search.enabled</code>).</p>}
          <dl className="index-facts">
            <div><dt>Entries</dt><dd data-testid="index-entries">{status.entries.toLocaleString('en')}</dd></div>
            <div><dt>Size</dt><dd>{formatBytes(status.sizeBytes)}</dd></div>
            <div><dt>Behind</dt><dd title="Versions saved but not indexed yet">{status.behind.toLocaleString('en')} {status.behind === 1 ? 'version' : 'versions'}</dd></div>
            <div><dt>Live pending</dt><dd title="Live drafts waiting for editing to pause">{status.livePending.toLocaleString('en')}</dd></div>
            <div>
              <dt>Last commit</dt>
              <dd>{status.lastCommit ? <time dateTime={status.lastCommit} title={new Date(status.lastCommit).toLocaleString()}>{relativeTime(status.lastCommit)}</time> : '—'}</dd>
            </div>
            <div><dt>Language</dt><dd>{status.language}</dd></div>
            <div><dt>Directory</dt><dd><code title={status.index}>{status.index}</code></dd></div>
          </dl>
          {status.error && <p className="error index-error"><strong>Indexer error:</strong> {status.error}</p>}
        </>
      )}
      {error && <p className="error" role="alert">{error}</p>}
      {running && (
        <div className="rebuild-progress">
          <progress
            aria-label="Rebuild progress"
            max={status?.rebuild?.total ?? undefined}
            value={status?.rebuild ? status.rebuild.done : undefined}
          />
          <span className="muted" role="status">
            {status?.rebuild
              ? `Rebuilding… ${status.rebuild.done.toLocaleString('en')} of ${status.rebuild.total.toLocaleString('en')}${fraction !== null ? ` (${Math.round(fraction * 100)} %)` : ''}`
              : 'Rebuilding…'}
          </span>
        </div>
      )}
      {done && <p className={done.ok ? 'ok' : 'error'} role="status" data-testid="rebuild-done">{done.text}</p>}
      <p className="muted index-note">Searches keep answering from the current index until the new one is complete.</p>
      <button type="button" className="primary" onClick={() => void rebuild()} disabled={running || starting || status?.enabled === false} aria-busy={running}>
        {running ? 'Rebuilding…' : 'Rebuild index'}
      </button>
    </aside>
  )
}
