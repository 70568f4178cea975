// One open document: its Y.Doc, kept in IndexedDB (y-indexeddb, so unsent edits survive a
// reload while offline) and synced with the server by the stock y-websocket provider.
// The session watches the provider's frames to know which local changes the server has
// acknowledged (see syncState.ts), and exposes a snapshot for the connection indicator.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { IndexeddbPersistence } from 'y-indexeddb'
import * as decoding from 'lib0/decoding'
import { PendingTracker, frameKey, type ConnStatus, type SyncFacts } from './syncState'

const MSG_SYNC = 0
const MSG_AUTH = 2
const SYNC_STEP1 = 0
const SYNC_STEP2 = 1
const SYNC_UPDATE = 2
const TYPING_IDLE_MS = 1500

export interface SessionFacts extends SyncFacts { loaded: boolean }

export interface LocalUser { id: string, name: string, color: string }

const unsentKey = (docId: string) => `vellum:unsent:${docId}`

export class CollabSession {
  readonly doc = new Y.Doc()
  readonly provider: WebsocketProvider
  readonly tracker = new PendingTracker()
  private idb: IndexeddbPersistence
  private facts: SessionFacts
  private listeners = new Set<() => void>()
  private typingTimer: ReturnType<typeof setTimeout> | null = null
  private cleanups: (() => void)[] = []
  private destroyed = false
  /** the server refused our edits (a viewer's connection) */
  permissionDenied = false

  constructor (readonly docId: string, readonly user: LocalUser, readOnly: boolean) {
    this.facts = { status: 'connecting', synced: false, online: navigator.onLine, unsent: 0, readOnly, loaded: false, localPending: 0 }
    // Counting local changes must see each update before the provider sends it, so this
    // listener is registered before the provider's.
    const onUpdate = (update: Uint8Array, origin: unknown) => {
      if (origin === this.provider || origin === this.idb) return
      this.tracker.local(frameKey(update))
      this.markTyping()
    }
    this.doc.on('update', onUpdate)
    this.cleanups.push(() => this.doc.off('update', onUpdate))

    this.idb = new IndexeddbPersistence(`vellum-doc-${docId}`, this.doc)
    // y-indexeddb writes each update in its own readwrite transaction, created by its
    // 'update' listener (registered just above, so it runs before this one). A readonly
    // transaction on the same store created after it completes only once that write has:
    // until then the change is not yet safe on this device (a reload would lose it).
    const onStored = (_update: Uint8Array, origin: unknown) => {
      const db = this.idb.db
      if (origin === this.idb || !db) return
      this.set({ localPending: (this.facts.localPending ?? 0) + 1 })
      const done = () => this.set({ localPending: Math.max(0, (this.facts.localPending ?? 0) - 1) })
      try {
        const tx = db.transaction(['updates'], 'readonly')
        tx.oncomplete = done
        tx.onabort = done
        tx.objectStore('updates').count()
      } catch {
        done()
      }
    }
    this.doc.on('update', onStored)
    this.cleanups.push(() => this.doc.off('update', onStored))
    const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/doc`
    this.provider = new WebsocketProvider(wsBase, docId, this.doc, { connect: false, disableBc: true })
    this.provider.awareness.setLocalStateField('user', { id: user.id, name: user.name, color: user.color, typing: false })

    const onStatus = ({ status }: { status: ConnStatus }) => {
      if (status === 'connecting') this.watchSocket()
      if (status === 'disconnected') this.tracker.disconnected()
      this.set({ status })
    }
    const onSync = (synced: boolean) => this.set(synced ? { synced, closed: undefined } : { synced })
    this.provider.on('status', onStatus)
    this.provider.on('sync', onSync)
    this.cleanups.push(() => { this.provider.off('status', onStatus); this.provider.off('sync', onSync) })

    this.cleanups.push(this.tracker.onChange(() => {
      const n = this.tracker.count
      try { localStorage.setItem(unsentKey(docId), String(n)) } catch { /* storage full or denied */ }
      this.set({ unsent: n })
    }))

    // The browser knows when the network is gone; reconnect attempts then would only fail.
    const offline = () => { this.set({ online: false }); this.provider.disconnect() }
    const online = () => { this.set({ online: true }); if (!this.destroyed) this.provider.connect() }
    window.addEventListener('offline', offline)
    window.addEventListener('online', online)
    this.cleanups.push(() => { window.removeEventListener('offline', offline); window.removeEventListener('online', online) })

    // Connect once the local copy is loaded, so the first sync carries any unsent edits.
    void this.idb.whenSynced.then(() => {
      if (this.destroyed) return
      const left = Number(localStorage.getItem(unsentKey(docId)) ?? '0')
      if (left > 0) this.tracker.restore(left)
      if (navigator.onLine) this.provider.connect()
      else this.set({ status: 'disconnected' })
      this.set({ loaded: true })
    })
  }

  get snapshot (): SessionFacts {
    return this.facts
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn)
    return () => { this.listeners.delete(fn) }
  }

  setReadOnly (readOnly: boolean): void {
    this.set({ readOnly })
  }

  private set (patch: Partial<SessionFacts>): void {
    this.facts = { ...this.facts, ...patch }
    for (const fn of this.listeners) fn()
  }

  /** Observe a new socket's frames both ways (the provider owns it; we only look). */
  private watchSocket (): void {
    const ws = this.provider.ws as (WebSocket & { vellumWatched?: boolean }) | null
    if (!ws || ws.vellumWatched) return
    ws.vellumWatched = true
    const send = ws.send.bind(ws)
    ws.send = (data: string | ArrayBufferLike | Blob | ArrayBufferView) => {
      if (data instanceof Uint8Array) this.onOutgoing(data)
      send(data)
    }
    ws.addEventListener('close', (ev: CloseEvent) => {
      // A close the server explained (1011 damaged, 1013 try again): the indicator says why.
      if (ev.code === 1011 || ev.code === 1013) this.set({ closed: { code: ev.code, reason: ev.reason } })
    })
    ws.addEventListener('message', (ev: MessageEvent) => {
      if (ev.data instanceof ArrayBuffer) this.onIncoming(new Uint8Array(ev.data))
    })
  }

  private onOutgoing (frame: Uint8Array): void {
    const d = decoding.createDecoder(frame)
    if (decoding.readVarUint(d) !== MSG_SYNC) return
    if (decoding.readVarUint(d) !== SYNC_STEP2) return
    const update = decoding.readVarUint8Array(d)
    // an empty v1 update: no structs, no deletions
    const empty = update.length === 2 && update[0] === 0 && update[1] === 0
    this.tracker.sentFull(frameKey(update), empty)
  }

  private onIncoming (frame: Uint8Array): void {
    const d = decoding.createDecoder(frame)
    const type = decoding.readVarUint(d)
    if (type === MSG_AUTH) {
      // y-protocols auth: 0 = permission denied, then the reason
      if (decoding.readVarUint(d) === 0) {
        this.permissionDenied = true
        this.set({ readOnly: true })
      }
      return
    }
    if (type !== MSG_SYNC) return
    const sub = decoding.readVarUint(d)
    if (sub === SYNC_UPDATE || sub === SYNC_STEP2) this.tracker.echoed(frameKey(decoding.readVarUint8Array(d)))
    else if (sub !== SYNC_STEP1) return
  }

  private markTyping (): void {
    const aw = this.provider.awareness
    const u = aw.getLocalState()?.user
    if (u && !u.typing) aw.setLocalStateField('user', { ...u, typing: true })
    if (this.typingTimer) clearTimeout(this.typingTimer)
    this.typingTimer = setTimeout(() => {
      const cur = aw.getLocalState()?.user
      if (cur?.typing) aw.setLocalStateField('user', { ...cur, typing: false })
    }, TYPING_IDLE_MS)
  }

  destroy (): void {
    this.destroyed = true
    if (this.typingTimer) clearTimeout(this.typingTimer)
    for (const c of this.cleanups) c()
    this.provider.destroy()
    void this.idb.destroy()
    this.doc.destroy()
  }
}
