import { useCallback, useEffect, useRef, useState } from 'react'
import * as api from '../lib/api'
import { errorText } from '../lib/errors'
import { subscribe } from '../lib/graphql'
import { relativeTime } from '../lib/docList'
import { wordCountText } from '../lib/plugins'
import { DiffView } from './DiffView'
import { useOnline } from '../lib/online'
import { Modal } from './Modal'
import { ActionError, shownError, type ShownError } from './ActionError'
import { PluginFields, hasFields } from './PluginFields'
import { navigate } from '../lib/router'

interface Props {
  docId: string
  canEdit: boolean
  available: boolean
  /** bumped by Ctrl/Cmd+S: focus the label field */
  saveRequest: number
  /** whether the server has plugin `fields` on documents and versions */
  fieldsAvailable: boolean
  /** bumped when the document got a version elsewhere (a publish): load versions and fields again */
  refreshKey: number
  /** select this version (its number) once the versions are loaded, with its diff against the live text */
  initialVersion?: number | null
  /** a save or restore failed (the editor marks the title or slug a plugin named) */
  onError?: (e: unknown) => void
  onClose: () => void
}

export function HistorySidebar ({ docId, canEdit, available, saveRequest, fieldsAvailable, refreshKey, initialVersion = null, onError, onClose }: Props) {
  const [versions, setVersions] = useState<api.Version[] | null>(null)
  const [fields, setFields] = useState<api.Fields | null>(null)
  const [error, setError] = useState<ShownError | null>(null)
  const [label, setLabel] = useState('')
  const [saving, setSaving] = useState(false)
  const [selected, setSelected] = useState<api.Version | null>(null)
  const [compareTo, setCompareTo] = useState<string>('live')
  const [mode, setMode] = useState<'diff' | 'view'>('diff')
  const [diff, setDiff] = useState<api.DiffPart[] | null>(null)
  const [html, setHtml] = useState<string | null>(null)
  const [detailError, setDetailError] = useState<ShownError | null>(null)
  const [confirm, setConfirm] = useState<api.Version | null>(null)
  const [notice, setNotice] = useState('')
  const labelRef = useRef<HTMLInputElement>(null)
  const selectedRef = useRef<HTMLLIElement>(null)
  // the `initialVersion` already selected (or found missing): a later reload keeps the person's choice
  const [applied, setApplied] = useState<number | null>(null)
  const [missing, setMissing] = useState<number | null>(null)
  const online = useOnline()

  const reload = useCallback(async () => {
    if (!available || !navigator.onLine) return
    // the fields are extra: without them the history still works
    const f = fieldsAvailable ? api.documentFields(docId).then(setFields, () => {}) : Promise.resolve()
    try {
      setVersions(await api.listVersions(docId, VERSIONS_SHOWN))
      setError(null)
    } catch (e) {
      setError({ text: errorText(e), plugin: null })
    }
    await f
  }, [docId, available, fieldsAvailable])

  useEffect(() => { void reload() }, [reload])

  useEffect(() => {
    if (refreshKey > 0) void reload()
  }, [refreshKey, reload])

  useEffect(() => {
    if (!available || !online) return
    return subscribe('subscription($d: ID!) { versionCreated(documentId: $d) { id } }', { d: docId }, () => { void reload() })
  }, [docId, available, reload, online])

  useEffect(() => {
    if (saveRequest > 0) labelRef.current?.focus()
  }, [saveRequest])

  // opened on a version (Search's Open): select it, with the diff against the live text
  if (initialVersion !== null && initialVersion !== applied && versions !== null) {
    setApplied(initialVersion)
    const v = versions.find((x) => x.number === initialVersion)
    setMissing(v ? null : initialVersion)
    if (v) {
      setSelected(v)
      setCompareTo('live')
      setMode('diff')
    }
  }

  useEffect(() => {
    if (applied !== null) selectedRef.current?.scrollIntoView({ block: 'nearest' })
  }, [applied])

  // the selected version's diff or rendering
  useEffect(() => {
    if (!selected) return
    let stale = false
    setDetailError(null)
    const work = mode === 'diff'
      ? api.versionDiff(selected.id, compareTo === 'live' ? null : compareTo).then((d) => { if (!stale) { setDiff(d); setHtml(null) } })
      : api.versionText(selected.id).then((v) => { if (!stale) { setHtml(v.html); setDiff(null) } })
    work.catch((e) => { if (!stale) setDetailError({ text: errorText(e), plugin: null }) })
    return () => { stale = true }
  }, [selected, compareTo, mode, versions])

  const save = async (e: React.FormEvent) => {
    e.preventDefault()
    const l = label.trim()
    if (!l) { labelRef.current?.focus(); return }
    setSaving(true)
    setError(null)
    setNotice('')
    try {
      const v = await api.saveVersion(docId, l)
      setLabel('')
      setNotice(`Saved v${v.number} “${v.label}”.`)
      await reload()
    } catch (err) {
      setError(shownError(err, 'saveVersion'))
      onError?.(err)
    } finally {
      setSaving(false)
    }
  }

  const restore = async (v: api.Version) => {
    setConfirm(null)
    setDetailError(null)
    try {
      const r = await api.restoreVersion(v.id)
      setNotice(`Restored v${v.number}; saved as v${r.number}.`)
      setSelected(null)
      await reload()
    } catch (err) {
      setDetailError(shownError(err, 'restore'))
      onError?.(err)
    }
  }

  return (
    <aside className="sidebar" aria-label="History">
      <div className="sidebar-head">
        <h2>History</h2>
        <button className="icon-btn" aria-label="Close history" onClick={onClose}>×</button>
      </div>
      {available && (
        <p className="sidebar-links">
          <a href={`/search?doc=${encodeURIComponent(docId)}`} onClick={(e) => { e.preventDefault(); navigate(`/search?doc=${encodeURIComponent(docId)}`) }}>Search this document’s history</a>
        </p>
      )}
      {missing !== null && <p className="warn" role="status">Version {missing} is not among the {VERSIONS_SHOWN} newest versions of this document.</p>}
      {!available && <p className="muted">Version history is not available on this server yet.</p>}
      {available && canEdit && (
        <form className="save-version" onSubmit={save}>
          <input ref={labelRef} name="versionLabel" aria-label="Version label" placeholder="Label, e.g. “First draft”" value={label} onChange={(e) => setLabel(e.target.value)} maxLength={200} />
          <button className="primary" type="submit" disabled={saving}>{saving ? 'Saving…' : 'Save version'}</button>
        </form>
      )}
      {error && <ActionError error={error} testId="save-version-error" />}
      {notice && <p className="ok" role="status">{notice}</p>}
      {hasFields(fields) && (
        <section className="doc-fields" aria-labelledby="doc-fields-title">
          <h3 id="doc-fields-title">Newest version</h3>
          <PluginFields fields={fields} testId="word-count" />
        </section>
      )}
      {available && versions?.length === 0 && !error && <p className="muted">No versions yet. Save one to mark a point you can come back to.</p>}
      <ol className="versions">
        {(versions ?? []).map((v) => (
          <li key={v.id} ref={selected?.id === v.id ? selectedRef : undefined} className={selected?.id === v.id ? 'selected' : undefined} data-version={v.number}>
            <button className="version" onClick={() => { setSelected(selected?.id === v.id ? null : v); setCompareTo('live'); setMode('diff') }} aria-expanded={selected?.id === v.id}>
              <span className="vnum">v{v.number}</span>
              <span className="vlabel">{v.label || 'Untitled version'}</span>
              {v.published && <span className="badge status-published">Published</span>}
              {v.restoredFrom != null && <span className="badge">from v{v.restoredFrom}</span>}
              <span className="vmeta">{v.author?.displayName ?? 'Someone'} · <time dateTime={v.createdAt} title={new Date(v.createdAt).toLocaleString()}>{relativeTime(v.createdAt)}</time>{wordCountOf(v) && ` · ${wordCountOf(v)}`}</span>
            </button>
            {selected?.id === v.id && (
              <div className="version-detail">
                <div className="segmented small" role="tablist">
                  <button role="tab" aria-selected={mode === 'diff'} onClick={() => setMode('diff')}>Changes</button>
                  <button role="tab" aria-selected={mode === 'view'} onClick={() => setMode('view')}>View</button>
                </div>
                {mode === 'diff' && (
                  <label className="compare">Compare with
                    <select value={compareTo} onChange={(e) => setCompareTo(e.target.value)} aria-label="Compare with">
                      <option value="live">the current text</option>
                      {(versions ?? []).filter((o) => o.id !== v.id).map((o) => <option key={o.id} value={o.id}>v{o.number} {o.label}</option>)}
                    </select>
                  </label>
                )}
                {detailError && <ActionError error={detailError} />}
                <PluginFields fields={v.fields} />
                {mode === 'diff' && diff && <DiffView parts={diff} />}
                {mode === 'view' && html !== null && <div className="prose version-view" dangerouslySetInnerHTML={{ __html: html }} />}
                {canEdit && <button className="danger" onClick={() => setConfirm(v)}>Restore this version…</button>}
              </div>
            )}
          </li>
        ))}
      </ol>
      {confirm && (
        <Modal title={`Restore v${confirm.number}?`} onClose={() => setConfirm(null)}>
          <p>The document’s text becomes the text of “{confirm.label}” for everyone editing it now. The restore is recorded as a new version; no version is lost.</p>
          <div className="actions">
            <button onClick={() => setConfirm(null)}>Cancel</button>
            <button className="primary danger" onClick={() => void restore(confirm)}>Restore</button>
          </div>
        </Modal>
      )}
    </aside>
  )
}

/** How many of the newest versions the sidebar lists. */
const VERSIONS_SHOWN = 50

const wordCountOf = (v: api.Version) => wordCountText(v.fields?.['word-count'])
