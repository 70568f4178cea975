// One client abstraction over both stock providers:
//   Vellum      y-websocket's WebsocketProvider (the y-websocket protocol, room = document id,
//               `?token=`), with disableBc and `ws`
//   Hocuspocus  @hocuspocus/provider's HocuspocusProvider (Hocuspocus frames every message
//               with the document name, so the plain y-websocket client cannot talk to it)
//
// A client types like a TipTap user: every insert is its own transaction (one update
// message), followed by an awareness update of its `cursor` field (TipTap's collaboration
// cursor moves the caret's awareness on every keystroke). What each provider does with
// awareness it receives is left to the provider: y-websocket's re-sends every awareness
// update it applies, Hocuspocus's does not.
//
// Latency: each writer records performance.now() per Yjs clock of its own client id just
// before an insert (a one-character insert takes exactly one clock), in `sendTimes`; a
// receiving client in the same process sees, per remote transaction, which clock range of
// which client arrived, and looks the send times up.

import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider } from '@hocuspocus/provider'

// every provider adds process listeners; a few hundred clients in one process are expected
process.setMaxListeners(1000)

/** clientID → send times (ms, performance.now()) indexed by clock */
export const sendTimes = new Map()

const COLORS = ['#958DF1', '#F98181', '#FBBC88', '#FAF594', '#70CFF8', '#94FADB', '#B9F18D']
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz '

export class BenchClient {
  /**
   * @param {object} target a started target (lib/targets.mjs)
   * @param {number} nodeIndex which of the target's nodes to connect to
   * @param {string} docName document id (Vellum) or name (Hocuspocus)
   * @param {string} name for messages and awareness
   */
  constructor (target, nodeIndex, docName, name) {
    this.name = name
    this.node = target.nodes[nodeIndex]
    this.kind = target.kind
    this.doc = new Y.Doc()
    this.text = this.doc.getText('t')
    this.id = this.doc.clientID
    this.typed = 0
    this.closes = 0
    if (this.kind === 'vellum') {
      this.provider = new WebsocketProvider(this.node.wsBase, docName, this.doc, {
        WebSocketPolyfill: WebSocket,
        params: { token: target.token },
        disableBc: true
      })
      this.provider.on('connection-close', () => { this.closes++ })
    } else {
      this.provider = new HocuspocusProvider({
        url: this.node.wsBase,
        name: docName,
        document: this.doc,
        token: target.token,
        WebSocketPolyfill: WebSocket
      })
      this.provider.on('close', () => { this.closes++ })
    }
    this.awareness = this.provider.awareness
    this.awareness.setLocalStateField('user', { name, color: COLORS[this.id % COLORS.length] })
  }

  get isSynced () {
    return this.kind === 'vellum' ? this.provider.synced : this.provider.isSynced
  }

  /** Resolve once the provider has synced with its server. */
  synced (timeout = 20_000) {
    if (this.isSynced) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off()
        reject(new Error(`${this.name} did not sync with ${this.node.name} (port ${this.node.port}) within ${timeout} ms (closes: ${this.closes})`))
      }, timeout)
      const event = this.kind === 'vellum' ? 'sync' : 'synced'
      const handler = (arg) => {
        const ok = this.kind === 'vellum' ? arg === true : arg?.state === true
        if (ok) { off(); resolve() }
      }
      const off = () => { clearTimeout(timer); this.provider.off(event, handler) }
      this.provider.on(event, handler)
    })
  }

  /** Insert one character at the end (a keystroke), then move the awareness cursor. */
  type () {
    let times = sendTimes.get(this.id)
    if (!times) sendTimes.set(this.id, (times = []))
    const clock = Y.getState(this.doc.store, this.id)
    const pos = this.text.length
    times[clock] = performance.now()
    this.text.insert(pos, ALPHABET[this.typed++ % ALPHABET.length])
    const rel = Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(this.text, pos + 1))
    this.awareness.setLocalStateField('cursor', { anchor: rel, head: rel })
  }

  /** How many of `writer`'s updates this client has received (its state of that client). */
  stateOf (writer) { return Y.getState(this.doc.store, writer.id) }

  /**
   * Call `fn(clientId, fromClock, toClock, now)` for every clock range a remote transaction
   * brings (toClock exclusive). Returns an unsubscribe function.
   */
  onReceive (fn) {
    const handler = (tr) => {
      if (tr.local) return
      const now = performance.now()
      for (const [client, after] of tr.afterState) {
        const before = tr.beforeState.get(client) ?? 0
        if (after > before) fn(client, before, after, now)
      }
    }
    this.doc.on('afterTransaction', handler)
    return () => this.doc.off('afterTransaction', handler)
  }

  destroy () {
    try {
      this.provider.destroy()
      // y-websocket's provider leaves its Awareness (and its interval) alive
      if (this.kind === 'vellum') this.awareness.destroy()
    } catch {}
    this.doc.destroy()
    sendTimes.delete(this.id)
  }
}

/** Connect clients in small batches (so a burst of upgrades is not what gets measured). */
export async function connectAll (specs, { batch = 20 } = {}) {
  const clients = []
  try {
    for (let i = 0; i < specs.length; i += batch) {
      const made = specs.slice(i, i + batch).map((s) => new BenchClient(...s))
      clients.push(...made)
      await Promise.all(made.map((c) => c.synced()))
    }
  } catch (e) {
    for (const c of clients) c.destroy()
    throw e
  }
  return clients
}
