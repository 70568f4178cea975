// Losing a node while clients type through nginx. SIGTERM: the node closes its document
// sockets with 1012 (service restart) and the stock provider reconnects by itself, through
// nginx, to another node. SIGKILL: the sockets just drop; the provider reconnects and its
// sync step 1/2 resends whatever the dead node had not stored. Either way every token any
// client typed, before and after, is in the document at the end, for a newcomer too.

import assert from 'node:assert/strict'
import { createDocument, register } from '../lib/api.mjs'
import { Client, waitConverged } from '../lib/client.mjs'
import { Prng, seedFromEnv } from '../lib/prng.mjs'
import { delay, listen, waitUntil } from '../lib/wait.mjs'
import { Typist, assertTokens, eventually, sumSamples, useCluster } from '../lib/cluster.mjs'

const CLIENTS = 9

const seed = seedFromEnv()
const rng = new Prng(seed)
const cluster = useCluster('failover')

/** Document connections on each node (0 for a node that is not running). */
async function connections () {
  return await Promise.all(cluster.nodes.map(async (_, k) =>
    cluster.alive(k + 1) ? sumSamples(await cluster.metrics(k + 1), 'vellum_connections') : 0))
}

cluster.test(`SIGTERM, then SIGKILL, of a node under ${CLIENTS} clients typing through nginx: they reconnect elsewhere and nothing is lost`, { timeout: 180_000 }, async (t) => {
  const owner = await register(cluster.nginx, 'owner')
  const { id } = await createDocument(cluster.nginx, owner.token, 'failover')
  const clients = []
  for (let i = 0; i < CLIENTS; i++) clients.push(new Client(cluster.nginx, id, { token: owner.token, name: `c${i}@nginx` }))
  t.after(() => clients.forEach((c) => c.destroy()))
  await Promise.all(clients.map((c) => c.synced()))

  /** every close each client's provider saw: { at, code } */
  const closes = clients.map(() => [])
  const offs = clients.map((c, i) => listen(c.provider, 'connection-close', (ev) => closes[i].push({ at: Date.now(), code: ev?.code })))
  t.after(() => offs.forEach((off) => off()))

  const typists = clients.map((c, i) => new Typist(c, `c${i}`, rng.fork()).start({ intervalMs: 80 }))
  const typed = () => typists.flatMap((ty) => ty.typed)
  await delay(1000) // load shaping: typing before the first failure

  const everyoneBack = (what) => waitUntil(() => clients.every((c) => c.provider.wsconnected && c.provider.synced), {
    on: clients.flatMap((c) => [[c.provider, 'status'], [c.provider, 'sync']]),
    timeout: 30_000,
    what,
    describe: () => clients.map((c) => `  ${c.name}: connected=${c.provider.wsconnected} synced=${c.provider.synced}; ${c.events.slice(-4).join('; ')}`).join('\n')
  })

  /** Stops the node with the most clients the given way; checks who was disconnected and that all came back. */
  async function failNode (how) {
    let perNode = []
    await eventually(async () => {
      perNode = await connections()
      return perNode.reduce((a, b) => a + b, 0) === CLIENTS
    }, { what: `the nodes to count ${CLIENTS} connections`, describe: () => `per node: ${perNode}` })
    const victim = perNode.indexOf(Math.max(...perNode)) + 1
    const expected = perNode[victim - 1]
    const mark = closes.map((l) => l.length)
    const closedSince = () => clients.map((_, i) => i).filter((i) => closes[i].length > mark[i])
    console.log(`${how} node ${victim}, which has ${expected} of the ${CLIENTS} clients (per node: ${perNode.join(', ')}); ${typed().length} tokens typed so far`)
    const started = Date.now()
    if (how === 'SIGTERM') await cluster.stopNode(victim)
    else await cluster.killNode(victim)

    await waitUntil(() => closedSince().length >= expected, {
      on: clients.map((c) => [c.provider, 'connection-close']),
      timeout: 15_000,
      what: `the ${expected} clients of node ${victim} to be disconnected`
    })
    await everyoneBack(`every client to reconnect after the ${how}`)
    const closed = closedSince()
    console.log(`${how}: ${closed.length} clients disconnected (codes ${closed.map((i) => closes[i][mark[i]].code).join(', ')}), all back in ${Date.now() - started} ms`)
    assert.equal(closed.length, expected, `only node ${victim}'s ${expected} clients should have been disconnected, not ${closed.map((i) => clients[i].name)}`)
    if (how === 'SIGTERM') {
      for (const i of closed) {
        assert.equal(closes[i][mark[i]].code, 1012, `${clients[i].name} was closed with ${closes[i][mark[i]].code}, not 1012 (service restart)`)
      }
    }
    assert.ok(!cluster.alive(victim), `node ${victim} is still running after ${how}`)
    return victim
  }

  const termed = await failNode('SIGTERM')
  await delay(1000) // load shaping: typing on the survivors
  await cluster.startNode(termed)
  await delay(500) // load shaping: typing with all three nodes up again
  const killed = await failNode('SIGKILL')
  await delay(1000) // load shaping: typing after the crash

  await Promise.all(typists.map((ty) => ty.stop()))
  await waitConverged(clients, { timeout: 30_000, what: 'convergence after the failures' })
  assertTokens(clients[0].text.toString(), typed(), 'the clients, after both failures')

  const survivor = cluster.nodes.map((_, k) => k + 1).find((i) => i !== killed && cluster.alive(i))
  const fresh = new Client(cluster.node(survivor), id, { token: owner.token, name: `fresh@node-${survivor}` })
  t.after(() => fresh.destroy())
  await fresh.synced()
  await waitConverged([...clients, fresh], { timeout: 15_000, what: 'a newcomer' })
  assertTokens(fresh.text.toString(), typed(), `a newcomer on node ${survivor}`)
})
