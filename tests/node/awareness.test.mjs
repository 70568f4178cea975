// Awareness relay with the stock client. The y-websocket provider sends the server every
// awareness change it *applies*, its own and everyone else's (its 'update' handler does not look
// at the origin), and TipTap's caret moves the local state on every keystroke. A server that
// relays every awareness frame it receives sends each caret move back out once per client:
// an observer then receives O(N²) awareness messages per round of N moves. A server that relays
// only entries newer than what it holds (as y-protocols' Awareness does on the reference server)
// sends O(N).

import { test } from 'node:test'
import * as Y from 'yjs'
import { Awareness, encodeAwarenessUpdate } from 'y-protocols/awareness'
import * as encoding from 'lib0/encoding'
import assert from 'node:assert/strict'
import { useServer } from './lib/harness.mjs'
import { createDocument, register } from './lib/api.mjs'
import { Client, MSG_AWARENESS } from './lib/client.mjs'
import { waitUntil } from './lib/wait.mjs'

const MOVERS = 10
const ROUNDS = 5

let owner
const server = useServer('awareness', async () => {
  owner = await register(server, 'owner')
})

/** Resolve once every client in `clients` holds, for every mover, a cursor at `round`. */
function everyoneSees (clients, movers, round, what) {
  const ids = movers.map((m) => m.doc.clientID)
  const sees = (c) => ids.every((id) => c.provider.awareness.getStates().get(id)?.cursor?.head === round)
  return waitUntil(() => clients.every(sees), {
    on: clients.map((c) => [c.provider.awareness, 'change']),
    timeout: 20_000,
    what,
    describe: () => clients.filter((c) => !sees(c)).map((c) => `  ${c.name} lacks some of round ${round}`).join('\n')
  })
}

test(`an observer receives O(N) awareness messages per round of ${MOVERS} caret moves`, { timeout: 90_000 }, async (t) => {
  const { id: docId } = await createDocument(server, owner.token, 'carets')
  const movers = []
  for (let i = 0; i < MOVERS; i++) movers.push(new Client(server, docId, { token: owner.token, name: `m${i}` }))
  const observer = new Client(server, docId, { token: owner.token, name: 'observer' })
  const all = [...movers, observer]
  t.after(() => all.forEach((c) => c.destroy()))
  await Promise.all(all.map((c) => c.synced()))

  // As TipTap does: a user field once, then a caret per keystroke.
  movers.forEach((m, i) => m.provider.awareness.setLocalStateField('user', { name: `typist ${i}`, color: '#30bced' }))
  movers.forEach((m) => m.provider.awareness.setLocalStateField('cursor', { anchor: 0, head: 0 }))
  await everyoneSees(all, movers, 0, 'everyone to see every caret at 0')

  let received = 0
  const onMessage = (data) => {
    const m = new Uint8Array(data.buffer ?? data, data.byteOffset ?? 0, data.byteLength)
    if (m[0] === MSG_AWARENESS) received++
  }
  observer.provider.ws.on('message', onMessage)
  t.after(() => observer.provider?.ws?.off('message', onMessage))

  for (let round = 1; round <= ROUNDS; round++) {
    for (const m of movers) m.provider.awareness.setLocalStateField('cursor', { anchor: round, head: round })
    await everyoneSees(all, movers, round, `everyone to see every caret at ${round}`)
  }

  // Each move reaches the observer once; the clients' echoes of it must die at the server.
  // Slack for the 15 s renewals (one per client) should the rounds take that long.
  const moves = MOVERS * ROUNDS
  const bound = moves + MOVERS + 1
  assert.ok(received >= moves, `the observer saw every move: ${received} awareness messages for ${moves} moves`)
  assert.ok(received <= bound,
    `${received} awareness messages reached the observer for ${moves} caret moves (at most ${bound} expected; ` +
    `a relay of every echo sends about ${moves * (MOVERS + 1)})`)
})

test('a client that leaves is removed everywhere, once', { timeout: 30_000 }, async (t) => {
  const { id: docId } = await createDocument(server, owner.token, 'leaving')
  const [a, b, c] = ['a', 'b', 'c'].map((name) => new Client(server, docId, { token: owner.token, name }))
  t.after(() => [a, b, c].forEach((x) => x.destroy()))
  await Promise.all([a, b, c].map((x) => x.synced()))
  a.provider.awareness.setLocalStateField('user', { name: 'A' })
  const aId = a.doc.clientID
  await waitUntil(() => [b, c].every((x) => x.provider.awareness.getStates().has(aId)), {
    on: [b, c].map((x) => [x.provider.awareness, 'change']),
    what: 'b and c to see a'
  })
  let removals = 0
  const count = (data) => {
    const m = new Uint8Array(data.buffer ?? data, data.byteOffset ?? 0, data.byteLength)
    if (m[0] === MSG_AWARENESS) removals++
  }
  c.provider.ws.on('message', count)
  a.destroy()
  await waitUntil(() => [b, c].every((x) => !x.provider.awareness.getStates().has(aId)), {
    on: [b, c].map((x) => [x.provider.awareness, 'change']),
    what: 'b and c to see a leave'
  })
  // b echoes the removal; a round trip on c's connection lets anything the server relays for
  // it arrive before we count.
  await b.roundTrip()
  await c.roundTrip()
  c.provider.ws.off('message', count)
  assert.equal(removals, 1, `c received ${removals} awareness messages for one client leaving`)
})

test('no connection can change or remove the awareness state another connection owns', { timeout: 30_000 }, async (t) => {
  const { id: docId } = await createDocument(server, owner.token, 'spoof')
  const [a, b, mallory] = ['a', 'b', 'mallory'].map((name) => new Client(server, docId, { token: owner.token, name }))
  t.after(() => [a, b, mallory].forEach((x) => x.destroy()))
  await Promise.all([a, b, mallory].map((x) => x.synced()))
  a.provider.awareness.setLocalStateField('user', { name: 'A' })
  a.provider.awareness.setLocalStateField('cursor', { anchor: 1, head: 1 })
  const aId = a.doc.clientID
  const named = (x, name) => x.provider.awareness.getStates().get(aId)?.user?.name === name
  await waitUntil(() => [b, mallory].every((x) => named(x, 'A')), {
    on: [b, mallory].map((x) => [x.provider.awareness, 'change']),
    what: 'b and mallory to see a'
  })
  // Everything b's client ever shows for A's client id, not only where it ends up (A's own
  // client would put a spoof of itself right again, and hide it).
  const shown = []
  const record = () => shown.push(JSON.stringify(b.provider.awareness.getStates().get(aId) ?? null))
  b.provider.awareness.on('change', record)
  t.after(() => b.provider?.awareness.off('change', record))

  // Mallory claims A's client id with a clock far ahead of A's, then removes it.
  const fakeDoc = new Y.Doc()
  fakeDoc.clientID = aId
  const fake = new Awareness(fakeDoc)
  const send = (update) => {
    const enc = encoding.createEncoder()
    encoding.writeVarUint(enc, MSG_AWARENESS)
    encoding.writeVarUint8Array(enc, update)
    mallory.provider.ws.send(encoding.toUint8Array(enc))
  }
  for (let i = 0; i < 100; i++) fake.setLocalState({ user: { name: 'Mallory' }, cursor: { anchor: 99, head: 99 } })
  send(encodeAwarenessUpdate(fake, [aId]))
  fake.setLocalState(null)
  send(encodeAwarenessUpdate(fake, [aId]))
  fake.destroy()
  fakeDoc.destroy()
  // The server handles a connection's messages in order: once these answer, the spoofs
  // were handled, and anything relayed for them reached b before its own answer.
  await mallory.roundTrip()
  await b.roundTrip()

  assert.ok(named(b, 'A'), `b shows ${JSON.stringify(b.provider.awareness.getStates().get(aId))} for A`)
  assert.deepEqual(shown.filter((s) => s.includes('Mallory') || s === 'null'), [], `b was shown a spoof: ${shown.join(', ')}`)
  // Dropped quietly: Mallory's socket is open, and A's own caret still reaches b.
  assert.ok(!mallory.events.some((e) => e.includes('connection-close')), mallory.events.join('\n'))
  a.provider.awareness.setLocalStateField('cursor', { anchor: 2, head: 2 })
  await waitUntil(() => b.provider.awareness.getStates().get(aId)?.cursor?.head === 2, {
    on: [[b.provider.awareness, 'change']],
    what: "A's next caret move to reach b"
  })
})
