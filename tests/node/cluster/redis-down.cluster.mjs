// Redis is not on the durability path. It is stopped for 30 s (VELLUM_CLUSTER_REDIS_DOWN_SECS)
// while three clients type (two on node 1, one on node 2): the two on node 1 keep seeing each
// other, every node says "degraded" on /readyz and none exits; once Redis is back every node
// catches up, all converge within 15 s, and every token typed is there.

import assert from 'node:assert/strict'
import { createDocument, register } from '../lib/api.mjs'
import { Client, waitConverged, waitForDoc } from '../lib/client.mjs'
import { Prng, seedFromEnv } from '../lib/prng.mjs'
import { delay } from '../lib/wait.mjs'
import { Typist, assertTokens, eventually, useCluster } from '../lib/cluster.mjs'

const DOWN_SECS = Number(process.env.VELLUM_CLUSTER_REDIS_DOWN_SECS || 30)
const CONVERGE_MS = 15_000

const seed = seedFromEnv()
const rng = new Prng(seed)
const cluster = useCluster('redis-down')

async function readiness () {
  return await Promise.all(cluster.nodes.map((_, k) => cluster.readyz(k + 1)))
}
const show = (answers) => answers.map((r, k) => `node-${k + 1}: ${r.status} ${JSON.stringify(r.body)}`).join('; ')

function assertAllAlive (when) {
  for (let i = 1; i <= cluster.nodes.length; i++) assert.ok(cluster.alive(i), `node ${i} exited ${when}:\n${cluster.tail(i)}`)
}

/** `from` types a token; it must reach `to` (same node) within 5 s. */
async function reaches (from, to, typist, what) {
  const t = typist.typeOne()
  await waitForDoc(to, (c) => c.text.toString().includes(t), { timeout: 5_000, what: `${t} from ${from.name} ${what}` })
}

cluster.test(`Redis down for ${DOWN_SECS} s while clients type: same-node clients keep working, and all converge after`, { timeout: DOWN_SECS * 1000 + 120_000 }, async (t) => {
  const owner = await register(cluster.nginx, 'owner')
  const { id } = await createDocument(cluster.nginx, owner.token, 'redis down')
  const a1 = new Client(cluster.node(1), id, { token: owner.token, name: 'a1@node-1' })
  const a2 = new Client(cluster.node(1), id, { token: owner.token, name: 'a2@node-1' })
  const b = new Client(cluster.node(2), id, { token: owner.token, name: 'b@node-2' })
  const clients = [a1, a2, b]
  t.after(() => clients.forEach((c) => c.destroy()))
  await Promise.all(clients.map((c) => c.synced()))
  const [ta1, ta2, tb] = clients.map((c, i) => new Typist(c, ['aa', 'ab', 'b'][i], rng.fork()))
  const typists = [ta1, ta2, tb]
  const all = () => typists.flatMap((ty) => ty.typed)

  // the bus works: typing reaches everyone
  typists.forEach((ty) => ty.start({ intervalMs: 100 }))
  await delay(1000) // load shaping: some typing before the outage
  await reaches(b, a1, tb, 'across nodes before the outage')
  let answers = []
  await eventually(async () => {
    answers = await readiness()
    return answers.every((r) => r.status === 200 && r.body.status === 'ready')
  }, { what: '/readyz to say ready on every node before the outage', describe: () => show(answers) })

  await cluster.stopRedis()
  const downAt = Date.now()
  await eventually(async () => {
    answers = await readiness()
    return answers.every((r) => r.status === 200 && r.body.status === 'degraded' && r.body.reason === 'bus')
  }, { what: '/readyz to say degraded (bus) on every node', describe: () => show(answers) })
  console.log(`every node degraded ${Date.now() - downAt} ms after Redis stopped`)

  // clients of one node still see each other, both ways
  await reaches(a1, a2, ta1, 'on node 1 while Redis is down')
  await reaches(a2, a1, ta2, 'on node 1 while Redis is down')

  await delay(Math.max(0, DOWN_SECS * 1000 - (Date.now() - downAt))) // load shaping: the outage lasts
  assertAllAlive('while Redis was down')
  answers = await readiness()
  assert.ok(answers.every((r) => r.status === 200 && r.body.status === 'degraded'), `still degraded at the end of the outage: ${show(answers)}`)
  await reaches(a1, a2, ta1, `on node 1 after ${DOWN_SECS} s without Redis`)

  await cluster.startRedis()
  const upAt = Date.now()
  await Promise.all(typists.map((ty) => ty.stop()))
  await waitConverged(clients, { timeout: CONVERGE_MS, what: 'convergence after Redis came back' })
  console.log(`converged ${Date.now() - upAt} ms after Redis restarted; ${all().length} tokens typed`)
  assertTokens(a1.text.toString(), all(), 'after the outage')

  await eventually(async () => {
    answers = await readiness()
    return answers.every((r) => r.status === 200 && r.body.status === 'ready')
  }, { what: '/readyz to say ready again on every node', describe: () => show(answers) })

  const fresh = new Client(cluster.node(3), id, { token: owner.token, name: 'fresh@node-3' })
  t.after(() => fresh.destroy())
  await fresh.synced()
  await waitConverged([...clients, fresh], { timeout: CONVERGE_MS, what: 'a newcomer on node 3' })
  assertTokens(fresh.text.toString(), all(), 'a newcomer on node 3')
  assertAllAlive('after the outage')
  const catchups = await cluster.perNode('vellum_catchups_total')
  console.log(`vellum_catchups_total per node: ${catchups.join(', ')}`)
})
