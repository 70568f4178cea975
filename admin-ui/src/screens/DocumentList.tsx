import { useCallback, useEffect, useRef, useState } from 'react'
import * as api from '../lib/api'
import { errorText } from '../lib/errors'
import { matchesSearch, mergePage, relativeTime } from '../lib/docList'
import { navigate } from '../lib/router'
import { actionFor, displayKeys, isMac } from '../lib/shortcuts'

const PAGE = 20

export function DocumentList ({ user }: { user: api.User }) {
  const [status, setStatus] = useState<api.DocStatus | null>(null)
  const [query, setQuery] = useState('')
  const [docs, setDocs] = useState<api.DocMeta[]>([])
  const [next, setNext] = useState<string | null>(null)
  const [loading, setLoading] = useState(true)
  const [error, setError] = useState('')
  const [newTitle, setNewTitle] = useState('')
  const [creating, setCreating] = useState(false)
  const search = useRef<HTMLInputElement>(null)
  const create = useRef<HTMLInputElement>(null)
  const mac = isMac()
  const canCreate = user.role !== 'VIEWER'

  const load = useCallback(async (after: string | null) => {
    setLoading(true)
    setError('')
    try {
      const page = await api.listDocuments(status, after, PAGE)
      setDocs((prev) => (after ? mergePage(prev, page.docs) : page.docs))
      setNext(page.hasNextPage ? page.endCursor : null)
    } catch (e) {
      setError(errorText(e))
    } finally {
      setLoading(false)
    }
  }, [status])

  useEffect(() => { void load(null) }, [load])

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const a = actionFor(e, mac, 'list')
      if (a === 'search') { e.preventDefault(); search.current?.focus(); search.current?.select() }
      if (a === 'newDocument' && canCreate) { e.preventDefault(); create.current?.focus() }
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [mac, canCreate])

  const onCreate = async (e: React.FormEvent) => {
    e.preventDefault()
    const title = newTitle.trim() || 'Untitled'
    setCreating(true)
    setError('')
    try {
      const d = await api.createDocument(title)
      navigate(`/documents/${d.id}`)
    } catch (err) {
      setError(errorText(err))
      setCreating(false)
    }
  }

  const shown = docs.filter((d) => matchesSearch(d, query))
  const filters: (api.DocStatus | null)[] = [null, ...api.STATUSES]

  return (
    <section className="doclist">
      <div className="doclist-head">
        <h1>Documents</h1>
        {canCreate && (
          <form className="create" onSubmit={onCreate}>
            <input ref={create} aria-label="New document title" placeholder="New document title" value={newTitle} onChange={(e) => setNewTitle(e.target.value)} />
            <button className="primary" type="submit" disabled={creating}>{creating ? 'Creating…' : 'New document'}</button>
          </form>
        )}
      </div>
      <div className="doclist-tools">
        <div className="segmented" role="tablist" aria-label="Filter by status">
          {filters.map((s) => (
            <button key={s ?? 'all'} role="tab" aria-selected={status === s} onClick={() => setStatus(s)}>
              {s ? api.STATUS_LABEL[s] : 'All'}
            </button>
          ))}
        </div>
        <div className="searchbox">
          <input ref={search} type="search" aria-label="Search documents" placeholder="Search by title" value={query} onChange={(e) => setQuery(e.target.value)} />
          <kbd>{displayKeys('Mod+K', mac)}</kbd>
        </div>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      <table className="docs">
        <thead><tr><th>Title</th><th>Status</th><th className="hide-narrow">Owner</th><th>Updated</th></tr></thead>
        <tbody>
          {shown.map((d) => (
            <tr key={d.id} onClick={() => navigate(`/documents/${d.id}`)}>
              <td><a href={`/documents/${d.id}`} onClick={(e) => { e.preventDefault(); navigate(`/documents/${d.id}`) }}>{d.title || 'Untitled'}</a><div className="slug">/{d.slug}</div></td>
              <td><span className={`badge status-${d.status.toLowerCase()}`}>{api.STATUS_LABEL[d.status]}</span></td>
              <td className="hide-narrow">{d.owner?.displayName ?? '—'}</td>
              <td title={new Date(d.updatedAt).toLocaleString()}>{relativeTime(d.updatedAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {!loading && shown.length === 0 && (
        <div className="empty">
          {docs.length === 0
            ? <p>{status ? `No ${api.STATUS_LABEL[status].toLowerCase()} documents.` : 'No documents yet.'}{canCreate && !status ? ' Create the first one above.' : ''}</p>
            : <p>No loaded document matches “{query}”.{next ? ' Load more to search further.' : ''}</p>}
        </div>
      )}
      <div className="pager">
        {loading && <span className="muted" aria-busy="true">Loading…</span>}
        {!loading && next && <button onClick={() => void load(next)}>Load more</button>}
      </div>
    </section>
  )
}
