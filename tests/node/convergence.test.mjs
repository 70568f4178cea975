// Concurrent editing through /ws/doc: every replica converges to the same state.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { useServer } from './lib/harness.mjs'
import { createDocument, register } from './lib/api.mjs'
import { Client, connectClients, snapshot, waitConverged } from './lib/client.mjs'
import { insertParagraph, randomEdits } from './lib/edits.mjs'
import { Prng, seedFromEnv } from './lib/prng.mjs'

const seed = seedFromEnv()
const rng = new Prng(seed)
let owner
const server = useServer('convergence', async () => {
  owner = await register(server, 'owner')
})

async function concurrentEditing (t, clientCount, editsPerClient) {
  const { id: docId } = await createDocument(server, owner.token, `convergence ${clientCount}`)
  const clients = await connectClients(server, docId, owner.token, clientCount)
  t.after(() => clients.forEach((c) => c.destroy()))

  // everyone edits at once, each with its own generator derived from the seed
  await Promise.all(clients.map((c) => randomEdits(c.doc, rng.fork(), editsPerClient)))
  // then leaves a sentinel that no later edit removes
  for (const c of clients) {
    c.doc.transact(() => {
      c.text.insert(c.text.length, `<end:${c.name}>`)
      insertParagraph(c.xml, c.xml.length, `end:${c.name}`)
    })
  }

  await waitConverged(clients, { timeout: 60_000 })

  const expected = snapshot(clients[0].doc)
  for (const c of clients) {
    assert.deepEqual(snapshot(c.doc), expected, `${c.name} differs from ${clients[0].name}`)
  }
  for (const c of clients) {
    assert.ok(expected.text.includes(`<end:${c.name}>`), `text lacks ${c.name}'s sentinel`)
    assert.ok(expected.xml.includes(`end:${c.name}`), `xml lacks ${c.name}'s sentinel`)
  }
  assert.ok(expected.text.length > 0 && clients[0].xml.length >= clientCount)

  // the server holds the same state: a newcomer gets exactly it
  const fresh = new Client(server, docId, { token: owner.token, name: 'fresh' })
  t.after(() => fresh.destroy())
  await fresh.synced()
  await waitConverged([fresh, clients[0]], { what: 'newcomer catching up' })
  assert.deepEqual(snapshot(fresh.doc), expected, 'a new client sees a different state')
}

test('two clients editing concurrently converge', { timeout: 120_000 }, (t) => concurrentEditing(t, 2, 300))

test('ten clients editing concurrently converge', { timeout: 180_000 }, (t) => concurrentEditing(t, 10, 80))
