// What the connection/sync indicator shows, computed from facts only:
//  - the provider's `status` (connecting / connected / disconnected) and `sync` events;
//  - local changes not yet acknowledged by the server. Vellum echoes each update to its
//    sender only once it is durable, byte for byte, so a local change is "unsent" until
//    the frame that carried it comes back. A sync-step-2 frame (sent after a reconnect)
//    carries everything the server lacked, so its echo acknowledges every change made
//    before it; an empty step 2 means the server already had everything.
//  - changes that were unsent when the page was last closed (kept in IndexedDB by
//    y-indexeddb; their count is remembered so a reload while offline still says so).

export class PendingTracker {
  /** local changes not yet acknowledged, by the key of their update's bytes */
  private pending: { id: number, key: string }[] = []
  private nextId = 1
  /** restored from a previous page load; acknowledged by the next full frame's echo */
  private restored = 0
  /** full frames in flight: key -> the highest change id and the restored count they carry */
  private inflight = new Map<string, { upTo: number, restored: number }>()
  private listeners = new Set<() => void>()

  get count (): number {
    return this.pending.length + this.restored
  }

  onChange (fn: () => void): () => void {
    this.listeners.add(fn)
    return () => { this.listeners.delete(fn) }
  }

  private changed (): void {
    for (const fn of this.listeners) fn()
  }

  /** Changes left unsent by an earlier page load. */
  restore (n: number): void {
    if (n > 0) {
      this.restored += n
      this.changed()
    }
  }

  /** A local change was made; `key` is frameKey() of its update. */
  local (key: string): void {
    this.pending.push({ id: this.nextId++, key })
    this.changed()
  }

  /** A full sync frame (step 2) was sent: it carries every change made so far. */
  sentFull (key: string, empty: boolean): void {
    const upTo = this.nextId - 1
    if (empty) {
      // the server told us its state and lacks nothing of ours
      this.ackUpTo(upTo, this.restored)
      return
    }
    this.inflight.set(key, { upTo, restored: this.restored })
  }

  /** An update came back from the server. Returns true when it was one of ours. */
  echoed (key: string): boolean {
    const full = this.inflight.get(key)
    if (full) {
      this.inflight.delete(key)
      this.ackUpTo(full.upTo, full.restored)
      return true
    }
    const i = this.pending.findIndex((p) => p.key === key)
    if (i < 0) return false
    this.pending.splice(i, 1)
    this.changed()
    return true
  }

  /** The connection dropped: frames in flight may never be echoed; the next full sync covers them. */
  disconnected (): void {
    this.inflight.clear()
  }

  private ackUpTo (upTo: number, restored: number): void {
    const before = this.count
    this.pending = this.pending.filter((p) => p.id > upTo)
    this.restored = Math.max(0, this.restored - restored)
    if (this.count !== before) this.changed()
  }
}

/** A cheap, stable key for a frame's payload (FNV-1a over the bytes, plus the length). */
export function frameKey (bytes: Uint8Array): string {
  let h = 0x811c9dc5
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return `${bytes.length}:${h.toString(16)}`
}

export type ConnStatus = 'connecting' | 'connected' | 'disconnected'

export interface SyncFacts {
  status: ConnStatus
  synced: boolean
  online: boolean
  unsent: number
  readOnly: boolean
  /** local changes not yet written to this browser's IndexedDB copy */
  localPending?: number
  /** how the server last closed the socket, until the next sync (its code and reason) */
  closed?: { code: number, reason: string }
}

export type SyncState = 'connecting' | 'syncing' | 'synced' | 'offline' | 'saving' | 'unavailable' | 'damaged'

/** Close codes the server gives a reason for (see ARCHITECTURE.md, `ws`). */
const TRY_AGAIN = 1013
const SERVER_ERROR = 1011

export interface SyncView { state: SyncState, label: string, detail: string }

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`

export function syncView (f: SyncFacts): SyncView {
  if (f.online && f.status !== 'connected' && f.closed) {
    const { code, reason } = f.closed
    if (code === SERVER_ERROR && reason.includes('damaged')) {
      return { state: 'damaged', label: 'Document damaged', detail: reason }
    }
    if (code === TRY_AGAIN) {
      return {
        state: 'unavailable',
        label: f.unsent > 0 ? `Server unavailable · ${plural(f.unsent, 'unsent change')}` : 'Server unavailable',
        detail: `${reason || 'The server cannot store changes right now.'} Your changes are kept in this browser and sent when it is back.`
      }
    }
  }
  if (!f.online || f.status === 'disconnected') {
    return {
      state: 'offline',
      label: f.unsent > 0 ? `Offline · ${plural(f.unsent, 'unsent change')}` : 'Offline',
      detail: (f.localPending ?? 0) > 0
        ? 'Saving your changes in this browser…'
        : f.unsent > 0
          ? 'Your changes are kept in this browser and will be sent when the connection returns.'
          : 'Reconnecting when the network returns.'
    }
  }
  if (f.status === 'connecting') {
    return {
      state: 'connecting',
      label: f.unsent > 0 ? `Connecting · ${plural(f.unsent, 'unsent change')}` : 'Connecting…',
      detail: 'Connecting to the server.'
    }
  }
  if (!f.synced) return { state: 'syncing', label: 'Syncing…', detail: 'Exchanging changes with the server.' }
  if (f.unsent > 0 && !f.readOnly) {
    return { state: 'saving', label: `Saving ${plural(f.unsent, 'change')}…`, detail: 'Waiting for the server to store your latest changes.' }
  }
  return {
    state: 'synced',
    label: f.readOnly ? 'Synced · read-only' : 'Synced',
    detail: f.readOnly ? 'You are viewing live; you cannot edit this document.' : 'Every change is saved on the server.'
  }
}
