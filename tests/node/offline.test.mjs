// Offline editing: a client disconnects, edits, reconnects; both sides' edits merge everywhere.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { useServer } from './lib/harness.mjs'
import { createDocument, register } from './lib/api.mjs'
import { Client, connectClients, snapshot, waitConverged, waitForDoc } from './lib/client.mjs'
import { insertParagraph, randomEdits } from './lib/edits.mjs'
import { Prng, seedFromEnv } from './lib/prng.mjs'

const seed = seedFromEnv()
const rng = new Prng(seed)
let owner
const server = useServer('offline', async () => {
  owner = await register(server, 'owner')
})

/** A marker in the text and a paragraph in the fragment, both unique to `tag`. */
function mark (client, tag) {
  client.doc.transact(() => {
    client.text.insert(client.text.length, `[${tag}]`)
    insertParagraph(client.xml, client.xml.length, `{${tag}}`)
  })
}
const hasMark = (client, tag) => client.text.toString().includes(`[${tag}]`) && client.xml.toString().includes(`{${tag}}`)

test('edits made offline merge with concurrent online edits after reconnecting', { timeout: 120_000 }, async (t) => {
  const { id: docId } = await createDocument(server, owner.token, 'offline merge')
  const [a, b, c] = await connectClients(server, docId, owner.token, 3)
  t.after(() => [a, b, c].forEach((x) => x.destroy()))

  // common starting point
  await randomEdits(a.doc, rng.fork(), 40)
  await waitConverged([a, b, c])

  a.provider.disconnect()
  await a.disconnected()
  assert.equal(a.provider.wsconnected, false)

  // both sides edit, including on top of the shared content; the marks come last, so that no
  // random deletion removes them
  await Promise.all([
    randomEdits(a.doc, rng.fork(), 80),
    randomEdits(b.doc, rng.fork(), 80),
    randomEdits(c.doc, rng.fork(), 80)
  ])
  mark(a, 'a-offline')
  mark(b, 'b-online')
  mark(c, 'c-online')

  // b's and c's edits went through the server (c has b's), and did not reach a
  await waitConverged([b, c], { what: 'online clients converging while a is offline' })
  assert.ok(hasMark(c, 'b-online'))
  assert.ok(!hasMark(a, 'b-online') && !hasMark(a, 'c-online'), 'the offline client received updates')
  assert.ok(!hasMark(b, 'a-offline') && !hasMark(c, 'a-offline'), 'an offline edit reached the others')

  a.provider.connect()
  await a.synced()
  await waitConverged([a, b, c], { timeout: 60_000, what: 'convergence after reconnecting' })

  for (const x of [a, b, c]) {
    for (const tag of ['a-offline', 'b-online', 'c-online']) {
      assert.ok(hasMark(x, tag), `${x.name} lacks ${tag}`)
    }
  }
  const expected = snapshot(a.doc)
  assert.deepEqual(snapshot(b.doc), expected)
  assert.deepEqual(snapshot(c.doc), expected)

  // and the server has it all: a newcomer sees the merged document
  const fresh = new Client(server, docId, { token: owner.token, name: 'fresh' })
  t.after(() => fresh.destroy())
  await fresh.synced()
  await waitForDoc(fresh, () => snapshot(fresh.doc).stateVector === expected.stateVector, { what: 'merged state' })
  assert.deepEqual(snapshot(fresh.doc), expected)
})

test('a client that went offline before the others edited catches up on reconnect', { timeout: 60_000 }, async (t) => {
  const { id: docId } = await createDocument(server, owner.token, 'offline catch-up')
  const [a, b] = await connectClients(server, docId, owner.token, 2)
  t.after(() => [a, b].forEach((x) => x.destroy()))

  a.provider.disconnect()
  await a.disconnected()
  // only the online side edits: a has nothing to send, everything to receive
  await randomEdits(b.doc, rng.fork(), 60)
  mark(b, 'b-while-a-away')
  await b.roundTrip()
  assert.ok(!hasMark(a, 'b-while-a-away'))

  a.provider.connect()
  await a.synced()
  await waitConverged([a, b])
  assert.ok(hasMark(a, 'b-while-a-away'))
})
