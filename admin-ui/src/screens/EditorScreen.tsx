import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react'
import * as api from '../lib/api'
import { ApiError, errorField, errorText, fieldMessage } from '../lib/errors'
import { CollabSession } from '../lib/collab'
import { conflictFields, currentFromConflict, resolveConflict, type Choice, type FieldConflict, type MetaEdit, type MetaField } from '../lib/conflict'
import { subscribe } from '../lib/graphql'
import { colorFor } from '../lib/presence'
import { navigate } from '../lib/router'
import { useOnline } from '../lib/online'
import { actionFor, displayKeys, isMac } from '../lib/shortcuts'
import { RichEditor } from '../components/RichEditor'
import { PresenceBar } from '../components/PresenceBar'
import { SyncIndicator } from '../components/SyncIndicator'
import { HistorySidebar } from '../components/HistorySidebar'
import { ConflictDialog } from '../components/ConflictDialog'
import { ShareDialog } from '../components/ShareDialog'
import { ActionError, shownError, type ShownError } from '../components/ActionError'

/** The inputs a refused or invalid metadata write can point at. */
type FieldName = 'title' | 'slug'
const INPUT_FIELDS: readonly FieldName[] = ['title', 'slug']

const metaKey = (id: string) => `vellum:doc:${id}`

function cachedMeta (id: string): api.DocMeta | null {
  try {
    const raw = localStorage.getItem(metaKey(id))
    return raw ? JSON.parse(raw) as api.DocMeta : null
  } catch {
    return null
  }
}

/** `version` (from `?version=<number>`): open the history on that version, its diff against the live text shown. */
export function EditorScreen ({ id, version, user }: { id: string, version: number | null, user: api.User }) {
  const [meta, setMetaState] = useState<api.DocMeta | null>(null)
  const [loadError, setLoadError] = useState('')
  const [caps, setCaps] = useState<api.Capabilities | null>(null)
  const [session, setSession] = useState<CollabSession | null>(null)
  const [titleDraft, setTitleDraft] = useState<string | null>(null)
  const [slugDraft, setSlugDraft] = useState<string | null>(null)
  const [metaError, setMetaError] = useState<ShownError | null>(null)
  const [publishError, setPublishError] = useState<ShownError | null>(null)
  // the message next to the title or slug input a plugin (or validation) named
  const [fieldErrors, setFieldErrors] = useState<Partial<Record<FieldName, string>>>({})
  // bumped after a publish (it records a version): the sidebar reloads versions and fields
  const [versionsChanged, setVersionsChanged] = useState(0)
  const [busy, setBusy] = useState('')
  const [conflict, setConflict] = useState<{ conflicts: FieldConflict[], current: api.DocMeta } | null>(null)
  const [history, setHistory] = useState(version !== null)
  const [saveRequest, setSaveRequest] = useState(0)
  const [share, setShare] = useState(false)
  const [presenceReadOnly, setPresenceReadOnly] = useState(false)
  const draftRef = useRef<string | null>(null)
  draftRef.current = titleDraft ?? slugDraft
  const mac = isMac()
  const online = useOnline()

  const setMeta = useCallback((d: api.DocMeta) => {
    setMetaState(d)
    try { localStorage.setItem(metaKey(id), JSON.stringify(d)) } catch { /* not essential */ }
  }, [id])

  // metadata (offline: the last copy seen)
  useEffect(() => {
    let stale = false
    if (!navigator.onLine) {
      const c = cachedMeta(id)
      if (c) setMetaState(c)
      else setLoadError('This document has not been opened on this device yet, and the network is offline.')
      setCaps(api.ALL_CAPABILITIES)
      return
    }
    Promise.all([api.getDocument(id), api.capabilities()])
      .then(([d, c]) => {
        if (stale) return
        if (d.myAccess === 'NONE') { setLoadError('This document is not shared with you; only its published version is public.'); return }
        setMeta(d)
        setCaps(c)
      })
      .catch((e) => {
        if (stale) return
        const c = cachedMeta(id)
        if (e instanceof ApiError && e.code === 'NETWORK' && c) { setMetaState(c); setCaps(api.ALL_CAPABILITIES) } else setLoadError(errorText(e))
      })
    return () => { stale = true }
  }, [id, setMeta])

  // another `?version=` for this document (the editor stays mounted): show the history
  const [shownVersion, setShownVersion] = useState(version)
  if (version !== shownVersion) {
    setShownVersion(version)
    if (version !== null) setHistory(true)
  }

  /** Close the history; a `?version=` in the URL goes with it (a reload opens the plain editor). */
  const closeHistory = useCallback(() => {
    setHistory(false)
    if (location.search) navigate(location.pathname, { replace: true })
  }, [])

  const knownReadOnly = meta?.myAccess ? meta.myAccess === 'READ' : user.role === 'VIEWER'

  // the live document
  useEffect(() => {
    if (!meta) return
    const s = new CollabSession(id, { id: user.id, name: user.displayName, color: colorFor(user.id) }, false)
    setSession(s)
    return () => { s.destroy(); setSession(null) }
    // a new session only for another document or user, not for metadata changes
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [id, user.id, user.displayName, meta !== null])

  const facts = useSyncExternalStore(session?.subscribe ?? noSubscribe, () => session?.snapshot ?? null)
  const readOnly = knownReadOnly || presenceReadOnly || Boolean(facts?.readOnly)

  useEffect(() => { session?.setReadOnly(readOnly) }, [session, readOnly])

  // Without `myAccess` (older servers), ask presence whether our connection is read-only.
  useEffect(() => {
    if (!session || !caps || caps.myAccess || knownReadOnly || !facts?.synced || !online) return
    let stale = false
    api.presence(id).then((entries) => {
      const mine = entries.find((e) => e.clientId === String(session.doc.clientID))
      if (!stale && mine?.readOnly) setPresenceReadOnly(true)
    }).catch(() => {})
    return () => { stale = true }
  }, [session, caps, knownReadOnly, facts?.synced, id, online])

  // metadata changed by someone else: adopt it unless we are in the middle of an edit
  useEffect(() => {
    if (!caps?.publish || !online) return
    return subscribe<{ documentChanged: { kind: string, document: api.DocMeta | null } }>(
      'subscription($id: ID!) { documentChanged(id: $id) { kind document { id title slug status lockVersion updatedAt createdAt publishedVersionId } } }',
      { id },
      ({ documentChanged: c }) => {
        if (c.kind === 'DELETED') { setLoadError('This document was deleted.'); return }
        if (!c.document || c.kind === 'CONTENT') return
        const incoming = c.document
        setMetaState((prev) => {
          if (!prev || incoming.lockVersion <= prev.lockVersion || draftRef.current !== null) return prev
          const next = { ...prev, ...incoming }
          try { localStorage.setItem(metaKey(id), JSON.stringify(next)) } catch { /* */ }
          return next
        })
      }
    )
  }, [id, caps?.publish, online])

  /** Mark the title or slug input an error names (a plugin's refusal, a VALIDATION field). */
  const markField = useCallback((e: unknown) => {
    const f = errorField(e, INPUT_FIELDS)
    if (f && e instanceof ApiError) setFieldErrors({ [f]: fieldMessage(e) })
  }, [])

  const saveMeta = useCallback(async (edit: MetaEdit, base: api.DocMeta) => {
    // only the drafts this write saved: a title saved leaves a slug being typed alone
    const clearDrafts = (edit: MetaEdit) => {
      if (edit.title !== undefined) setTitleDraft(null)
      if (edit.slug !== undefined) setSlugDraft(null)
    }
    setMetaError(null)
    setFieldErrors({})
    setBusy('meta')
    try {
      const d = await api.updateDocument(id, edit, base.lockVersion)
      setMeta({ ...base, ...d })
      clearDrafts(edit)
    } catch (e) {
      if (e instanceof ApiError && e.code === 'CONFLICT') {
        const current = currentFromConflict(e.current) ?? await api.getDocument(id)
        const merged = { ...base, ...current, owner: base.owner, myAccess: base.myAccess }
        const conflicts = conflictFields(edit, merged)
        if (conflicts.length === 0) { setMeta(merged); clearDrafts(edit) } else setConflict({ conflicts, current: merged })
      } else {
        // an invalid title or slug is said next to its input; a plugin's refusal there too
        if (!(e instanceof ApiError && e.code === 'VALIDATION' && errorField(e, INPUT_FIELDS))) setMetaError(shownError(e, 'metadata'))
        markField(e)
      }
    } finally {
      setBusy('')
    }
  }, [id, setMeta, markField])

  const resolve = (choices: Partial<Record<MetaField, Choice>>) => {
    if (!conflict) return
    const edit = resolveConflict(conflict.conflicts, choices)
    setMeta(conflict.current)
    setConflict(null)
    if (edit) void saveMeta(edit, conflict.current)
    else { setTitleDraft(null); setSlugDraft(null) }
  }

  const commitTitle = () => {
    if (!meta || titleDraft === null) return
    const t = titleDraft.trim()
    if (t === meta.title || t === '') { setTitleDraft(null); return }
    void saveMeta({ title: t }, meta)
  }

  // an empty slug is sent as such: a plugin such as slugify may derive one; without one the
  // server refuses it, and says so next to the input
  const commitSlug = () => {
    if (!meta || slugDraft === null) return
    const s = slugDraft.trim()
    if (s === meta.slug) { setSlugDraft(null); return }
    void saveMeta({ slug: s }, meta)
  }

  const doPublish = useCallback(async (on: boolean) => {
    if (!meta) return
    setPublishError(null)
    setFieldErrors({})
    setBusy(on ? 'publish' : 'unpublish')
    try {
      const d = on ? await api.publish(id) : await api.unpublish(id)
      setMeta({ ...meta, ...d })
      if (on) setVersionsChanged((n) => n + 1)
    } catch (e) {
      setPublishError(shownError(e, on ? 'publish' : 'metadata'))
      markField(e)
    } finally {
      setBusy('')
    }
  }, [id, meta, setMeta, markField])

  // keyboard shortcuts
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const a = actionFor(e, mac, 'editor')
      if (!a) return
      if (a === 'saveVersion') { e.preventDefault(); if (!readOnly) { setHistory(true); setSaveRequest((n) => n + 1) } }
      if (a === 'history') { e.preventDefault(); if (history) closeHistory(); else setHistory(true) }
      if (a === 'share') { e.preventDefault(); if (meta?.myAccess !== 'READ') setShare(true) }
      if (a === 'publish') { e.preventDefault(); if (!readOnly && meta?.status !== 'PUBLISHED') void doPublish(true) }
      if (a === 'search') { e.preventDefault(); navigate('/') }
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [mac, readOnly, meta, doPublish, history, closeHistory])

  if (loadError) return <div className="empty"><h2>Cannot open this document</h2><p className="error" role="alert">{loadError}</p><p><a href="/" onClick={(e) => { e.preventDefault(); navigate('/') }}>Back to documents</a></p></div>
  if (!meta) return <div className="empty" aria-busy="true">Opening…</div>

  const canManage = meta.myAccess ? meta.myAccess === 'MANAGE' : (user.role === 'ADMIN' || meta.owner?.id === user.id)
  const published = meta.status === 'PUBLISHED'

  return (
    <div className={history ? 'editor-layout with-sidebar' : 'editor-layout'}>
      <section className="editor-main">
        <div className="doc-head">
          <a className="back" href="/" onClick={(e) => { e.preventDefault(); navigate('/') }} aria-label="Back to documents">←</a>
          <input
            className="title-input"
            aria-label="Title"
            aria-invalid={fieldErrors.title ? true : undefined}
            aria-describedby={fieldErrors.title ? 'title-error' : undefined}
            value={titleDraft ?? meta.title}
            readOnly={readOnly}
            onChange={(e) => { setTitleDraft(e.target.value); if (fieldErrors.title) setFieldErrors({ ...fieldErrors, title: undefined }) }}
            onBlur={commitTitle}
            onKeyDown={(e) => {
              if (e.key === 'Enter') { e.preventDefault(); commitTitle() }
              if (e.key === 'Escape') setTitleDraft(null)
            }}
          />
          <select
            className="status-select"
            aria-label="Status"
            value={meta.status}
            disabled={readOnly || busy === 'meta'}
            onChange={(e) => void saveMeta({ status: e.target.value as api.DocStatus }, meta)}
          >
            {api.STATUSES.map((s) => <option key={s} value={s} disabled={s === 'PUBLISHED' && !published}>{api.STATUS_LABEL[s]}</option>)}
          </select>
          {facts && <SyncIndicator facts={{ ...facts, readOnly }} />}
        </div>
        {fieldErrors.title && <p className="field-error title-error" id="title-error">{fieldErrors.title}</p>}
        <div className="doc-slug">
          <span className="slug-prefix" aria-hidden="true">/</span>
          <input
            className="slug-input"
            aria-label="Slug"
            aria-invalid={fieldErrors.slug ? true : undefined}
            aria-describedby={fieldErrors.slug ? 'slug-error' : undefined}
            value={slugDraft ?? meta.slug}
            readOnly={readOnly}
            spellCheck={false}
            onChange={(e) => { setSlugDraft(e.target.value); if (fieldErrors.slug) setFieldErrors({ ...fieldErrors, slug: undefined }) }}
            onBlur={commitSlug}
            onKeyDown={(e) => {
              if (e.key === 'Enter') { e.preventDefault(); commitSlug() }
              if (e.key === 'Escape') setSlugDraft(null)
            }}
          />
          {fieldErrors.slug && <p className="field-error" id="slug-error">{fieldErrors.slug}</p>}
        </div>
        <div className="doc-actions">
          {session && <PresenceBar awareness={session.provider.awareness} selfUserId={user.id} />}
          <div className="buttons">
            <button onClick={() => (history ? closeHistory() : setHistory(true))} aria-pressed={history} title={`History (${displayKeys('Mod+Shift+H', mac)})`}>History</button>
            {canManage && <button onClick={() => setShare(true)} title={`Share (${displayKeys('Mod+Shift+S', mac)})`}>Share</button>}
            {!readOnly && (published
              ? <button onClick={() => void doPublish(false)} disabled={busy !== ''}>{busy === 'unpublish' ? 'Unpublishing…' : 'Unpublish'}</button>
              : <button className="primary" onClick={() => void doPublish(true)} disabled={busy !== '' || caps?.publish === false} title={caps?.publish === false ? 'Publishing is not available on this server yet' : `Publish (${displayKeys('Mod+Shift+P', mac)})`}>{busy === 'publish' ? 'Publishing…' : 'Publish'}</button>)}
          </div>
        </div>
        {(metaError || publishError) && (
          <div className="inline-errors">
            {metaError && <ActionError error={metaError} testId="meta-error" />}
            {publishError && <ActionError error={publishError} testId="publish-error" />}
          </div>
        )}
        {readOnly && <p className="readonly-note" role="note">You can view this document but not edit it.</p>}
        {session && facts?.loaded ? <RichEditor session={session} readOnly={readOnly} /> : <div className="rich placeholder" aria-busy="true" />}
      </section>
      {history && (
        <HistorySidebar
          docId={id}
          canEdit={!readOnly}
          available={caps?.versions !== false}
          saveRequest={saveRequest}
          fieldsAvailable={caps?.fields !== false}
          refreshKey={versionsChanged}
          initialVersion={version}
          onError={markField}
          onClose={closeHistory}
        />
      )}
      {conflict && <ConflictDialog conflicts={conflict.conflicts} by={null} onResolve={resolve} onCancel={() => { setConflict(null); setMeta(conflict.current); setTitleDraft(null); setSlugDraft(null) }} />}
      {share && <ShareDialog docId={id} title={meta.title} onClose={() => setShare(false)} />}
    </div>
  )
}

const noSubscribe = () => () => {}
