// What a fresh client receives is what live clients hold, byte for byte. Yjs keeps a JSON
// object's keys in insertion order; the server decodes every update into yrs and encodes a
// fresh client's sync from there, and yrs kept object keys in a hash map, so a fresh client
// got `{c, s, t}` back as, say, `{t, s, c}`: replicas that disagree byte for byte, and any
// client that hashes or renders JSON in order sees two versions of one document. Vellum
// carries a patch of yrs that keeps the order (ARCHITECTURE.md, "yrs").

import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { useServer } from './lib/harness.mjs'
import { createDocument, register } from './lib/api.mjs'
import { Client, waitForDoc } from './lib/client.mjs'

let owner
const server = useServer('fidelity', async () => {
  owner = await register(server, 'owner')
})

// Twelve keys in an order no hash map keeps by chance (1 in 12! ≈ 5e8 per object).
const KEYS = ['c', 's', 't', 'zeta', 'alpha', 'm', 'b', 'y', 'k', 'a', 'omega', 'd']
const object = (n) => Object.fromEntries(KEYS.map((k, i) => [k, i * n]))

/** The JSON a client renders for the map, in its key order, and the document's encoding. */
const view = (client) => JSON.stringify(client.doc.getMap('m').toJSON())

test('a fresh client receives JSON objects with their keys in the order live clients hold them', { timeout: 60_000 }, async (t) => {
  const { id: docId } = await createDocument(server, owner.token, 'key order')
  const writer = new Client(server, docId, { token: owner.token, name: 'writer' })
  t.after(() => writer.destroy())
  await writer.synced()
  // In a map entry, in an array, and nested; written as the stock client writes them.
  writer.doc.transact(() => {
    const m = writer.doc.getMap('m')
    m.set('obj', object(1))
    m.set('list', [object(2), { nested: object(3), last: true }])
  })
  await writer.roundTrip()
  const live = view(writer)
  assert.equal(live.indexOf('"c"') < live.indexOf('"s"') && live.indexOf('"s"') < live.indexOf('"t"'), true, live)

  // A client joining now gets the document from the server's copy.
  const fresh = new Client(server, docId, { token: owner.token, name: 'fresh' })
  t.after(() => fresh.destroy())
  await fresh.synced()
  await waitForDoc(fresh, () => fresh.doc.getMap('m').has('list'), { what: 'the fresh client to have the map' })
  assert.equal(view(fresh), live, 'the fresh client renders the object as the writer does')
  assert.deepEqual(Y.encodeStateAsUpdate(fresh.doc), Y.encodeStateAsUpdate(writer.doc), 'the replicas are equal byte for byte')

  // And from the database, after a restart (snapshot and update log).
  writer.destroy()
  fresh.destroy()
  await server.restart()
  const reloaded = new Client(server, docId, { token: owner.token, name: 'reloaded' })
  t.after(() => reloaded.destroy())
  await reloaded.synced()
  await waitForDoc(reloaded, () => reloaded.doc.getMap('m').has('list'), { what: 'the reloaded client to have the map' })
  assert.equal(view(reloaded), live, 'a client after a restart renders it the same way')
})
