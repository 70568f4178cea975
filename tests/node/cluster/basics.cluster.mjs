// Three nodes behind nginx: editors spread over the nodes converge, GraphQL subscriptions on
// one node see changes made through another, and every node reports the same presence.

import assert from 'node:assert/strict'
import { createDocument, register, share } from '../lib/api.mjs'
import { Client, waitConverged } from '../lib/client.mjs'
import { Prng, seedFromEnv } from '../lib/prng.mjs'
import { subscribe } from '../lib/subscription.mjs'
import { Typist, assertTokens, eventually, gql, rename, useCluster } from '../lib/cluster.mjs'

const seed = seedFromEnv()
const rng = new Prng(seed)
const cluster = useCluster('basics')

const DOCS = 3
const PER_DOC = 10
const TOKENS = Number(process.env.VELLUM_CLUSTER_TOKENS || 15)

cluster.test(`${DOCS * PER_DOC} clients on ${DOCS} documents, spread over the nodes by nginx, type at once and converge`, { timeout: 120_000 }, async (t) => {
  const owner = await register(cluster.nginx, 'owner')
  const docs = []
  for (let d = 0; d < DOCS; d++) docs.push((await createDocument(cluster.nginx, owner.token, `spread ${d}`)).id)

  // Per document: one client straight to each node (so every document surely has editors on
  // every node), the others through nginx.
  const nodes = cluster.nodes.length
  const clients = []
  for (let d = 0; d < DOCS; d++) {
    for (let k = 0; k < PER_DOC; k++) {
      const via = k < nodes ? cluster.node(k + 1) : cluster.nginx
      clients.push(new Client(via, docs[d], { token: owner.token, name: `d${d}c${String(k).padStart(2, '0')}@${via.name}` }))
    }
  }
  t.after(() => clients.forEach((c) => c.destroy()))
  await Promise.all(clients.map((c) => c.synced({ timeout: 30_000 })))

  // nginx spread its connections: each node has more than the ones made to it directly
  let perNode = []
  await eventually(async () => {
    perNode = await cluster.perNode('vellum_connections')
    return perNode.reduce((a, b) => a + b, 0) === clients.length
  }, { what: `vellum_connections to add up to ${clients.length}`, describe: () => `per node: ${perNode}` })
  const viaNginx = perNode.map((n) => n - DOCS)
  console.log(`connections per node: ${perNode.join(', ')} (through nginx: ${viaNginx.join(', ')})`)
  for (const [k, n] of viaNginx.entries()) {
    assert.ok(n >= 1, `nginx sent none of its ${clients.length - DOCS * nodes} connections to node ${k + 1}: ${perNode}`)
  }

  // everyone types at once
  const typists = clients.map((c, i) => new Typist(c, `a${i}`, rng.fork()).start({ intervalMs: 60, count: TOKENS }))
  await Promise.all(typists.map((ty) => ty.done()))

  for (let d = 0; d < DOCS; d++) {
    const group = clients.slice(d * PER_DOC, (d + 1) * PER_DOC)
    const typed = typists.slice(d * PER_DOC, (d + 1) * PER_DOC).flatMap((ty) => ty.typed)
    await waitConverged(group, { timeout: 30_000, what: `document ${d}` })
    assertTokens(group[0].text.toString(), typed, `document ${d}`)

    // a newcomer on each node gets the same document
    const fresh = cluster.nodes.map((n) => new Client(n, docs[d], { token: owner.token, name: `fresh-d${d}@${n.name}` }))
    t.after(() => fresh.forEach((c) => c.destroy()))
    await Promise.all(fresh.map((c) => c.synced()))
    await waitConverged([...group, ...fresh], { timeout: 15_000, what: `newcomers on document ${d}` })
    for (const c of fresh) assertTokens(c.text.toString(), typed, `${c.name}`)
    fresh.forEach((c) => c.destroy())
  }
})

const CHANGED = 'subscription($d: ID!) { documentChanged(id: $d) { kind document { id title } } }'
const CREATED = 'subscription($d: ID!) { versionCreated(documentId: $d) { number label } }'
const PRESENCE = 'subscription($d: ID!) { presenceChanged(documentId: $d) { userId name clientId } }'
const SAVE = 'mutation($d: ID!, $l: String!) { saveVersion(documentId: $d, label: $l) { number } }'

/**
 * Pokes (through another node) until `sub` gets an event: a subscription is live on its own
 * node at once, but a node may need a moment before it receives other nodes' events.
 */
async function live (sub, poke, what) {
  for (let i = 0; i < 10; i++) {
    await poke(i)
    if (await sub.next(2000).then(() => true, () => false)) return
  }
  assert.fail(`${what}: no event on node 1 for 10 changes made through node 2`)
}

cluster.test('GraphQL subscribers on node 1 get the edit, version and title change made through node 2, and its presence', { timeout: 90_000 }, async (t) => {
  const [n1, n2] = [cluster.node(1), cluster.node(2)]
  const owner = await register(n1, 'owner')
  const editor = await register(n2, 'editor')
  const { id } = await createDocument(n2, owner.token, 'events across nodes')
  await share(n2, owner.token, id, editor.email, 'editor')

  const changes = subscribe(n1, owner.token, CHANGED, { d: id })
  const versions = subscribe(n1, owner.token, CREATED, { d: id })
  const presence = subscribe(n1, owner.token, PRESENCE, { d: id })
  t.after(() => { changes.dispose(); versions.dispose(); presence.dispose() })
  const first = await presence.next()
  assert.deepEqual(first.data?.presenceChanged, [], `nobody is in the document yet: ${JSON.stringify(first)}`)

  let probes = 0
  await live(versions, (i) => gql(n2, owner.token, SAVE, { d: id, l: `probe ${i}` }).then(() => probes++), 'versionCreated')
  await live(changes, (i) => rename(n2, owner.token, id, `probe ${i}`), 'documentChanged')

  // an edit through node 2
  const bob = new Client(n2, id, { token: editor.token, name: 'bob@node-2' })
  t.after(() => bob.destroy())
  await bob.synced()
  bob.text.insert(0, 'typed on node 2')
  await bob.roundTrip()
  await changes.until((d) => d.documentChanged.kind === 'CONTENT', 'a CONTENT event for the edit on node 2')

  // a version saved through node 2
  const saved = await gql(n2, owner.token, SAVE, { d: id, l: 'saved on node 2' })
  const created = await versions.until((d) => d.versionCreated.label === 'saved on node 2', 'versionCreated for the save on node 2')
  assert.equal(created.versionCreated.number, saved.saveVersion.number)
  assert.equal(created.versionCreated.number, probes + 1)

  // a title change through node 2
  await rename(n2, owner.token, id, 'Renamed on node 2')
  const renamed = await changes.until((d) => d.documentChanged.kind === 'METADATA' && d.documentChanged.document.title === 'Renamed on node 2',
    'a METADATA event with the title set on node 2')
  assert.equal(renamed.documentChanged.document.id, id)

  // presence of a client on node 2: appears, then leaves
  bob.provider.awareness.setLocalStateField('user', { name: 'Bob on node 2', color: '#00aa00' })
  const joined = await presence.until((d) => d.presenceChanged.some((p) => p.name === 'Bob on node 2'), 'Bob (on node 2) in presenceChanged on node 1')
  const entry = joined.presenceChanged.find((p) => p.name === 'Bob on node 2')
  assert.equal(entry.userId, editor.user.id)
  assert.equal(entry.clientId, String(bob.doc.clientID))
  bob.destroy()
  await presence.until((d) => !d.presenceChanged.some((p) => p.name === 'Bob on node 2'), 'Bob leaving, in presenceChanged on node 1')
})

const PRESENCE_QUERY = 'query($d: ID!) { presence(documentId: $d) { userId clientId name readOnly } }'

cluster.test('the presence query answers the same on every node', { timeout: 60_000 }, async (t) => {
  const owner = await register(cluster.nginx, 'owner')
  const { id } = await createDocument(cluster.nginx, owner.token, 'presence across nodes')
  const people = []
  for (let i = 1; i <= cluster.nodes.length; i++) {
    const user = i === 1 ? owner : await register(cluster.nginx, `person${i}`)
    if (i > 1) await share(cluster.nginx, owner.token, id, user.email, 'editor')
    const c = new Client(cluster.node(i), id, { token: user.token, name: `p${i}@node-${i}` })
    people.push({ user, client: c, name: `Person on node ${i}` })
  }
  t.after(() => people.forEach((p) => p.client.destroy()))
  await Promise.all(people.map((p) => p.client.synced()))
  for (const p of people) p.client.provider.awareness.setLocalStateField('user', { name: p.name, color: '#123456' })

  const key = (e) => `${e.clientId} ${e.userId} ${e.name} ${e.readOnly ? 'viewer' : 'editor'}`
  const expected = (list) => list.map((p) => key({ clientId: String(p.client.doc.clientID), userId: p.user.user.id, name: p.name, readOnly: false })).sort()
  let answers = []
  const agree = async (want) => {
    answers = await Promise.all(cluster.nodes.map(async (n) =>
      (await gql(n, owner.token, PRESENCE_QUERY, { d: id })).presence.map(key).sort()))
    return answers.every((a) => JSON.stringify(a) === JSON.stringify(want))
  }
  const describe = () => cluster.nodes.map((n, k) => `  ${n.name}: ${JSON.stringify(answers[k])}`).join('\n')

  const everyone = expected(people)
  await eventually(() => agree(everyone), { what: `every node's presence to list ${everyone.length} people`, describe: () => `want ${JSON.stringify(everyone)}\n${describe()}` })

  // the one on the last node leaves: every node drops them
  people.at(-1).client.destroy()
  const rest = expected(people.slice(0, -1))
  await eventually(() => agree(rest), { what: 'every node\'s presence to drop the one who left', describe: () => `want ${JSON.stringify(rest)}\n${describe()}` })
})
