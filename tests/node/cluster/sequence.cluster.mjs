// Sequence numbers given out by the database: two clients of one document, on two different
// nodes, type at the same time for a minute (VELLUM_CLUSTER_TYPE_SECS). Both nodes append to
// the document's update log at once; nothing is compacted (snapshots are pushed far away), so
// the log must hold exactly seq 1..n, with no gap and no number used twice, and a newcomer on
// a third node must get every token both typed.

import assert from 'node:assert/strict'
import { createDocument, register } from '../lib/api.mjs'
import { Client, waitConverged } from '../lib/client.mjs'
import { Prng, seedFromEnv } from '../lib/prng.mjs'
import { delay } from '../lib/wait.mjs'
import { Typist, assertTokens, useCluster } from '../lib/cluster.mjs'

const TYPE_SECS = Number(process.env.VELLUM_CLUSTER_TYPE_SECS || 60)
const INTERVAL_MS = Number(process.env.VELLUM_CLUSTER_TYPE_INTERVAL_MS || 25)

const seed = seedFromEnv()
const rng = new Prng(seed)
const cluster = useCluster('sequence', {
  env: {
    // no snapshot, so no update is deleted: the whole log stays to be checked
    VELLUM_COLLAB__SNAPSHOT_EVERY_UPDATES: '100000000',
    VELLUM_COLLAB__SNAPSHOT_EVERY_BYTES: '1099511627776'
  }
})

cluster.test(`two nodes appending to one document for ${TYPE_SECS} s: seq is 1..n, no gap, no duplicate`, { timeout: TYPE_SECS * 1000 + 120_000 }, async (t) => {
  const owner = await register(cluster.nginx, 'owner')
  const { id } = await createDocument(cluster.nginx, owner.token, 'sequence numbers')
  assert.match(id, /^[0-9a-f-]{36}$/, 'a document id is a UUID')
  const a = new Client(cluster.node(1), id, { token: owner.token, name: 'a@node-1' })
  const b = new Client(cluster.node(2), id, { token: owner.token, name: 'b@node-2' })
  t.after(() => { a.destroy(); b.destroy() })
  await Promise.all([a.synced(), b.synced()])

  const typists = [new Typist(a, 'a', rng.fork()), new Typist(b, 'b', rng.fork())]
  typists.forEach((ty) => ty.start({ intervalMs: INTERVAL_MS }))
  await delay(TYPE_SECS * 1000) // load shaping: how long they type
  await Promise.all(typists.map((ty) => ty.stop()))
  const typed = typists.flatMap((ty) => ty.typed)
  console.log(`typed ${typists.map((ty) => `${ty.typed.length} tokens on ${ty.client.name}`).join(', ')}`)

  await waitConverged([a, b], { timeout: 30_000, what: 'the two typists' })
  assertTokens(a.text.toString(), typed, 'the typists, converged')
  await Promise.all([a.roundTrip(), b.roundTrip()]) // everything they sent is stored

  const fresh = new Client(cluster.node(3), id, { token: owner.token, name: 'fresh@node-3' })
  t.after(() => fresh.destroy())
  await fresh.synced()
  assertTokens(fresh.text.toString(), typed, 'a newcomer on node 3')

  // Checked while the clients are still connected: a room that unloads writes a final
  // snapshot, which deletes the updates it covers.
  const [[count, distinct, min, max]] = await cluster.sql(
    `select count(*), count(distinct seq), coalesce(min(seq), 0), coalesce(max(seq), 0) from document_updates where document_id = '${id}'`)
  console.log(`document_updates: ${count} rows, ${distinct} distinct seq, seq ${min}..${max}`)
  assert.ok(Number(count) >= 2, `only ${count} updates stored for ${typed.length} tokens`)
  assert.equal(Number(min), 1, 'the log starts at seq 1 (nothing was compacted away)')
  assert.equal(Number(distinct), Number(count), 'no seq is used twice')
  assert.equal(Number(max), Number(count), 'no seq is skipped: max(seq) = count(*)')
})
