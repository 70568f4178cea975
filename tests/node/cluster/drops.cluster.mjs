// A lossy bus: every node drops 10 % of the messages it receives from Redis
// (VELLUM_BUS__DROP_PERCENT, a test-only setting). Clients on different nodes type; the nodes
// notice the gaps (or their periodic probe does) and catch up from the database, so all
// converge, and the catch-ups show in vellum_catchups_total.

import assert from 'node:assert/strict'
import { createDocument, register } from '../lib/api.mjs'
import { Client, waitConverged } from '../lib/client.mjs'
import { Prng, seedFromEnv } from '../lib/prng.mjs'
import { Typist, assertTokens, useCluster } from '../lib/cluster.mjs'

const DROP_PERCENT = Number(process.env.VELLUM_CLUSTER_DROP_PERCENT || 10)
const PER_NODE = 2
const TOKENS = Number(process.env.VELLUM_CLUSTER_TOKENS || 40)
const CONVERGE_MS = Number(process.env.VELLUM_CLUSTER_CONVERGE_SECS || 30) * 1000

const seed = seedFromEnv()
const rng = new Prng(seed)
const cluster = useCluster('drops', { env: { VELLUM_BUS__DROP_PERCENT: String(DROP_PERCENT) } })

cluster.test(`with ${DROP_PERCENT} % of bus messages dropped, clients on different nodes still converge`, { timeout: CONVERGE_MS + 120_000 }, async (t) => {
  const owner = await register(cluster.nginx, 'owner')
  const { id } = await createDocument(cluster.nginx, owner.token, 'lossy bus')
  const clients = []
  for (let i = 1; i <= cluster.nodes.length; i++) {
    for (let k = 0; k < PER_NODE; k++) clients.push(new Client(cluster.node(i), id, { token: owner.token, name: `n${i}c${k}@node-${i}` }))
  }
  t.after(() => clients.forEach((c) => c.destroy()))
  await Promise.all(clients.map((c) => c.synced()))

  const typists = clients.map((c, i) => new Typist(c, `t${i}`, rng.fork()).start({ intervalMs: 40, count: TOKENS }))
  await Promise.all(typists.map((ty) => ty.done()))
  const typed = typists.flatMap((ty) => ty.typed)
  const started = Date.now()
  await waitConverged(clients, { timeout: CONVERGE_MS, what: 'convergence over a lossy bus' })
  console.log(`converged ${Date.now() - started} ms after the typing stopped (${typed.length} tokens)`)
  assertTokens(clients[0].text.toString(), typed, 'over a lossy bus')

  const dropped = await cluster.perNode('vellum_bus_dropped_total', { reason: 'test' })
  const catchups = await cluster.perNode('vellum_catchups_total')
  const byCause = {}
  for (const cause of ['gap', 'probe', 'reconnect', 'lagged']) byCause[cause] = await cluster.sum('vellum_catchups_total', { cause })
  console.log(`dropped on purpose per node: ${dropped.join(', ')}; catch-ups per node: ${catchups.join(', ')} (${JSON.stringify(byCause)})`)
  assert.ok(dropped.reduce((a, b) => a + b, 0) > 0, 'no bus message was dropped: the test proves nothing')
  assert.ok(catchups.reduce((a, b) => a + b, 0) > 0, 'messages were dropped, yet no node caught up from the database')
  // what catches up after a lost message: the next message's gap, or the periodic probe
  assert.ok(byCause.gap + byCause.probe > 0, `no catch-up was caused by a gap or a probe: ${JSON.stringify(byCause)}`)

  // a newcomer on each node gets everything
  const fresh = cluster.nodes.map((n) => new Client(n, id, { token: owner.token, name: `fresh@${n.name}` }))
  t.after(() => fresh.forEach((c) => c.destroy()))
  await Promise.all(fresh.map((c) => c.synced()))
  await waitConverged([...clients, ...fresh], { timeout: CONVERGE_MS, what: 'newcomers' })
  for (const c of fresh) assertTokens(c.text.toString(), typed, c.name)
})
