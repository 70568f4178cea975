import { describe, expect, it } from 'vitest'
import { PendingTracker, frameKey, syncView, type SyncFacts } from './syncState'

const k = (...b: number[]) => frameKey(new Uint8Array(b))

describe('PendingTracker', () => {
  it('counts local changes until their own echo comes back', () => {
    const t = new PendingTracker()
    t.local(k(1)); t.local(k(2))
    expect(t.count).toBe(2)
    expect(t.echoed(k(2))).toBe(true)
    expect(t.count).toBe(1)
    expect(t.echoed(k(9))).toBe(false) // someone else's update
    expect(t.count).toBe(1)
    t.echoed(k(1))
    expect(t.count).toBe(0)
  })

  it('a full sync frame acknowledges every change made before it, not after', () => {
    const t = new PendingTracker()
    t.local(k(1)); t.local(k(2)); t.local(k(3))
    t.sentFull(k(7, 7), false)
    t.local(k(4))
    expect(t.count).toBe(4)
    t.echoed(k(7, 7))
    expect(t.count).toBe(1)
  })

  it('an empty step 2 means the server already has everything', () => {
    const t = new PendingTracker()
    t.local(k(1))
    t.sentFull(k(0, 0), true)
    expect(t.count).toBe(0)
  })

  it('frames lost with a connection are not acknowledged by a late echo', () => {
    const t = new PendingTracker()
    t.local(k(1))
    t.sentFull(k(5), false)
    t.disconnected()
    expect(t.echoed(k(5))).toBe(false)
    expect(t.count).toBe(1)
  })

  it('changes restored from an earlier page load count until a full sync is echoed', () => {
    const t = new PendingTracker()
    t.restore(3)
    expect(t.count).toBe(3)
    t.local(k(1))
    t.echoed(k(1)) // an individual update does not carry the restored changes
    expect(t.count).toBe(3)
    t.sentFull(k(8), false)
    t.echoed(k(8))
    expect(t.count).toBe(0)
  })

  it('notifies listeners on every change of the count', () => {
    const t = new PendingTracker()
    const seen: number[] = []
    const off = t.onChange(() => seen.push(t.count))
    t.local(k(1)); t.echoed(k(1))
    off()
    t.local(k(2))
    expect(seen).toEqual([1, 0])
  })
})

describe('syncView', () => {
  const base: SyncFacts = { status: 'connected', synced: true, online: true, unsent: 0, readOnly: false }
  it('says synced only when connected, synced and nothing is unsent', () => {
    expect(syncView(base).state).toBe('synced')
    expect(syncView({ ...base, unsent: 2 })).toMatchObject({ state: 'saving', label: 'Saving 2 changes…' })
    expect(syncView({ ...base, synced: false }).state).toBe('syncing')
    expect(syncView({ ...base, status: 'connecting' }).state).toBe('connecting')
  })
  it('offline shows the number of unsent changes', () => {
    expect(syncView({ ...base, online: false, unsent: 1 })).toMatchObject({ state: 'offline', label: 'Offline · 1 unsent change' })
    expect(syncView({ ...base, status: 'disconnected', unsent: 4 }).label).toBe('Offline · 4 unsent changes')
    expect(syncView({ ...base, online: false }).label).toBe('Offline')
  })
  it('says why the server closed the socket until the next sync', () => {
    const damaged = { code: 1011, reason: "this document's stored content is damaged; an administrator can repair it with `vellum doctor`" }
    expect(syncView({ ...base, status: 'connecting', closed: damaged })).toMatchObject({ state: 'damaged', label: 'Document damaged', detail: damaged.reason })
    const down = { code: 1013, reason: 'the database is unavailable; reconnect, your unsaved edits are kept' }
    expect(syncView({ ...base, status: 'connecting', unsent: 3, closed: down })).toMatchObject({ state: 'unavailable', label: 'Server unavailable · 3 unsent changes' })
    expect(syncView({ ...base, status: 'disconnected', closed: down }).detail).toContain('kept in this browser')
    // the browser being offline says more than the last close
    expect(syncView({ ...base, online: false, closed: down }).state).toBe('offline')
    // once connected again the close no longer matters
    expect(syncView({ ...base, closed: down }).state).toBe('synced')
    // other closes (a restart) are ordinary reconnects
    expect(syncView({ ...base, status: 'connecting', closed: { code: 1012, reason: 'server restarting; reconnect' } }).state).toBe('connecting')
  })
  it('read-only connections are marked', () => {
    expect(syncView({ ...base, readOnly: true }).label).toBe('Synced · read-only')
  })
})

describe('frameKey', () => {
  it('differs for different bytes and lengths', () => {
    expect(k(1, 2)).not.toBe(k(2, 1))
    expect(k(0)).not.toBe(k(0, 0))
    expect(k(1, 2)).toBe(k(1, 2))
  })
})
