// A test client: a Y.Doc with the stock y-websocket WebsocketProvider over `ws`.

import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { listen, waitForEvent, waitUntil } from './wait.mjs'

// every provider adds a process 'exit' listener; 20+ clients in one file are expected
process.setMaxListeners(200)

// y-protocols message types (first varuint of a frame) and sync sub-types
export const MSG_SYNC = 0
export const MSG_AWARENESS = 1
export const MSG_AUTH = 2
export const MSG_QUERY_AWARENESS = 3
export const SYNC_STEP1 = 0
export const SYNC_STEP2 = 1
export const SYNC_UPDATE = 2

/** every Client not yet destroyed, so that a failed test cannot leave connections behind */
const liveClients = new Set()

/** Destroy every client still alive (file-level cleanup; see lib/harness.mjs). */
export function destroyAllClients () {
  for (const c of [...liveClients]) c.destroy()
}

export class Client {
  /**
   * @param {import('./server.mjs').TestServer} server
   * @param {string} docId
   * @param {{ token?: string, doc?: Y.Doc, name?: string, connect?: boolean }} [opts]
   */
  constructor (server, docId, { token, doc = new Y.Doc(), name = 'client', connect = true } = {}) {
    this.docId = docId
    this.token = token
    this.doc = doc
    this.name = name
    /** connection history, for assertions and failure messages */
    this.events = []
    /** @type {WebsocketProvider} */
    this.provider = null
    this._attach(server, connect)
    liveClients.add(this)
  }

  get text () { return this.doc.getText('t') }
  get xml () { return this.doc.getXmlFragment('default') }

  _attach (server, connect) {
    this.server = server
    const provider = new WebsocketProvider(server.wsBase, this.docId, this.doc, {
      WebSocketPolyfill: WebSocket,
      params: this.token ? { token: this.token } : {},
      // without this, clients in one process would sync over BroadcastChannel, not the server
      disableBc: true,
      connect
    })
    this.provider = provider
    const at = () => new Date().toISOString()
    provider.on('status', ({ status }) => this.events.push(`${at()} status ${status}`))
    provider.on('connection-close', (ev) => this.events.push(`${at()} connection-close ${ev ? `code=${ev.code} reason=${ev.reason}` : '(local: disconnect() or 30 s without a message)'}`))
    provider.on('connection-error', () => this.events.push(`${at()} connection-error`))
    provider.on('sync', (s) => this.events.push(`${at()} sync ${s}`))
  }

  /** Resolve when the provider has completed a sync with the server (sync step 2 received). */
  async synced ({ timeout = 15_000 } = {}) {
    if (this.provider.synced) return
    await waitForEvent(this.provider, 'sync', {
      timeout,
      filter: (s) => s === true,
      what: `${this.name} to sync (events: ${this.events.slice(-5).join('; ') || 'none'})`
    })
  }

  /** Resolve when the provider reports 'disconnected' (after `provider.disconnect()`). */
  async disconnected ({ timeout = 10_000 } = {}) {
    if (!this.provider.wsconnected && !this.provider.wsconnecting) return
    await waitForEvent(this.provider, 'status', { timeout, filter: (e) => e.status === 'disconnected', what: `${this.name} to disconnect` })
  }

  /**
   * One request/response on this connection: send sync step 1 and wait for the server's sync
   * step 2. A server handles one connection's messages in order, so when this resolves, every
   * message this client sent before has been processed.
   */
  async roundTrip ({ timeout = 10_000 } = {}) {
    const ws = this.provider.ws
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new Error(`${this.name} is not connected`)
    const reply = waitForEvent(ws, 'message', {
      timeout,
      what: `${this.name}: sync step 2 in answer to sync step 1`,
      filter: (data) => {
        const m = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
        return m[0] === MSG_SYNC && m[1] === SYNC_STEP2
      }
    })
    const sv = Y.encodeStateVector(this.doc)
    // [messageSync, syncStep1, varUint8Array(stateVector)]; a state vector is < 2^28 bytes here
    ws.send(Buffer.concat([Buffer.from([MSG_SYNC, SYNC_STEP1]), varuint(sv.length), Buffer.from(sv)]))
    await reply
  }

  /** Drop the connection to the current server and connect the same Y.Doc to `server` (e.g.
   * after a restart on a new port) with a new provider. */
  reconnectTo (server, { connect = true } = {}) {
    this.destroyProvider()
    this.events.push(`${new Date().toISOString()} reconnecting to port ${server.port}`)
    this._attach(server, connect)
  }

  destroyProvider () {
    if (!this.provider) return
    this.provider.destroy()
    // the provider does not destroy the Awareness it created; its interval would keep the
    // process alive
    this.provider.awareness.destroy()
    this.provider = null
  }

  destroy () {
    if (!liveClients.delete(this)) return
    this.destroyProvider()
    this.doc.destroy()
  }
}

function varuint (n) {
  const out = []
  while (n > 0x7f) {
    out.push(0x80 | (n & 0x7f))
    n >>>= 7
  }
  out.push(n)
  return Buffer.from(out)
}

/** Connect `count` clients and wait until all have synced. */
export async function connectClients (server, docId, token, count, prefix = 'c') {
  const clients = []
  for (let i = 0; i < count; i++) {
    clients.push(new Client(server, docId, { token, name: `${prefix}${String(i).padStart(2, '0')}` }))
  }
  await Promise.all(clients.map((c) => c.synced()))
  return clients
}

// ---------------------------------------------------------------------------------------------
// Convergence

/** Everything that must be equal on converged replicas. */
export function snapshot (doc) {
  return {
    text: doc.getText('t').toString(),
    xml: doc.getXmlFragment('default').toString(),
    xmlJson: JSON.stringify(doc.getXmlFragment('default').toJSON()),
    // Y.encodeStateVector sorts its entries, so equal states encode to equal bytes
    stateVector: Buffer.from(Y.encodeStateVector(doc)).toString('hex')
  }
}

/** Canonical text form of a doc's state vector (sorted client:clock pairs). */
export function stateVectorString (doc) {
  const sv = Y.decodeStateVector(Y.encodeStateVector(doc))
  return [...sv.entries()].sort((a, b) => a[0] - b[0]).map(([c, k]) => `${c}:${k}`).join(',')
}

function sameState (docs) {
  const first = snapshot(docs[0])
  return docs.every((d, i) => {
    if (i === 0) return true
    const s = snapshot(d)
    return s.stateVector === first.stateVector && s.text === first.text && s.xml === first.xml && s.xmlJson === first.xmlJson
  })
}

export function describeStates (named) {
  return named.map(([name, doc]) => {
    const s = snapshot(doc)
    return `  ${name}: sv=[${stateVectorString(doc)}] text(${s.text.length})=${JSON.stringify(s.text.slice(0, 80))}… xml(${s.xml.length})`
  }).join('\n')
}

/**
 * Wait until all clients' docs have identical state vectors, Y.Text and XmlFragment content.
 * Driven by the docs' 'update' events.
 * @param {Client[]} clients
 */
export async function waitConverged (clients, { timeout = 30_000, what = 'convergence' } = {}) {
  const docs = clients.map((c) => c.doc)
  await waitUntil(() => sameState(docs), {
    on: docs.map((d) => [d, 'update']),
    timeout,
    what: `${what} of ${clients.map((c) => c.name).join(',')}`,
    describe: () => describeStates(clients.map((c) => [c.name, c.doc])) + '\n' +
      clients.map((c) => `  ${c.name} events: ${c.events.slice(-4).join('; ')}`).join('\n')
  })
}

/** Wait until `predicate(client)` holds, re-checked on each of the client's doc updates. */
export function waitForDoc (client, predicate, { timeout = 15_000, what = 'document condition' } = {}) {
  return waitUntil(() => predicate(client), {
    on: [[client.doc, 'update']],
    timeout,
    what: `${client.name}: ${what}`,
    describe: () => describeStates([[client.name, client.doc]]) + `\n  events: ${client.events.slice(-6).join('; ')}`
  })
}

/** Record whether a provider ever leaves the connected state; returns a stop function. */
export function watchConnection (client) {
  const log = []
  const offs = [
    listen(client.provider, 'connection-close', (ev) => log.push(`connection-close ${ev ? `code=${ev.code}` : '(local)'} at ${new Date().toISOString()}`)),
    listen(client.provider, 'status', ({ status }) => { if (status !== 'connected') log.push(`status ${status} at ${new Date().toISOString()}`) })
  ]
  return { log, stop: () => offs.forEach((off) => off()) }
}
