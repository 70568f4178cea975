// Crash durability. The server persists every update before it broadcasts it to anyone, so any
// update that some client received from the server survives a SIGKILL of the server.
//
// 20 clients type unique markers ("[c07-m0013]") into one Y.Text. A marker is *acknowledged* once
// a client other than its author received it from the server. At a random moment the server is
// SIGKILLed and restarted on the same data directory; then
//  1. before any old client reconnects, a fresh client must see every acknowledged marker;
//  2. after all clients reconnect (with their own Y.Docs, which still hold everything they typed),
//     all converge, and every marker ever typed is in the text exactly once.
// This is repeated for several rounds with different kill delays (derived from the printed seed).

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { useServer } from './lib/harness.mjs'
import { createDocument, register } from './lib/api.mjs'
import { Client, connectClients, describeStates, waitConverged } from './lib/client.mjs'
import { Prng, seedFromEnv } from './lib/prng.mjs'
import { delay } from './lib/wait.mjs'

const CLIENTS = Number(process.env.DURABILITY_CLIENTS || 20)
const TYPE_INTERVAL_MS = Number(process.env.DURABILITY_TYPE_INTERVAL_MS || 50)
// kill delay ranges (ms after typing starts), one round each
const ROUNDS = [[150, 600], [600, 2000], [2000, 5000]]

const seed = seedFromEnv()
const rng = new Prng(seed)
const killDelays = ROUNDS.map(([lo, hi]) => rng.int(lo, hi))
console.log('kill delays (ms)', killDelays.join(', '))

const MARKER = /\[c(\d{2})-m(\d{4})\]/g
const marker = (client, n) => `[c${String(client).padStart(2, '0')}-m${String(n).padStart(4, '0')}]`

const server = useServer('durability')

function countMarkers (text) {
  const counts = new Map()
  for (const m of text.matchAll(MARKER)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1)
  return counts
}

/** Insert `text` at a random marker boundary (never inside a marker, so markers stay whole). */
function insertAtBoundary (ytext, rng, text) {
  const s = ytext.toString()
  let at = rng.int(0, s.length)
  if (at < s.length && s[at] !== '[') {
    at = s.indexOf('[', at)
    if (at < 0) at = s.length
  }
  ytext.insert(at, text)
}

test(`${CLIENTS} clients typing while the server is SIGKILLed ${ROUNDS.length} times lose no acknowledged marker`, { timeout: 600_000 }, async (t) => {
  const owner = await register(server, 'owner')
  const { id: docId } = await createDocument(server, owner.token, 'durability')
  const clients = await connectClients(server, docId, owner.token, CLIENTS)
  t.after(() => clients.forEach((c) => c.destroy()))

  /** every marker typed, with its author */
  const typed = new Map()
  /** markers that a client other than the author received from the server */
  const acked = new Set()
  const counters = clients.map(() => 0)

  clients.forEach((c, i) => {
    // registered on the Y.Text, so it keeps working across provider replacements
    c.text.observe((event) => {
      if (event.transaction.local) return // our own typing; remote updates are applied with local=false
      for (const op of event.delta) {
        if (typeof op.insert !== 'string') continue
        for (const m of op.insert.matchAll(MARKER)) {
          if (Number(m[1]) !== i) acked.add(m[0])
        }
      }
    })
  })

  for (const [round, killDelay] of killDelays.entries()) {
    const rngs = clients.map(() => rng.fork())
    const stop = { now: false }
    const typing = clients.map(async (c, i) => {
      while (!stop.now) {
        const m = marker(i, counters[i]++)
        typed.set(m, i)
        insertAtBoundary(c.text, rngs[i], m)
        await delay(rngs[i].int(TYPE_INTERVAL_MS / 2, TYPE_INTERVAL_MS * 3 / 2))
      }
    })

    // load shaping: the kill point is a chosen moment, not a synchronisation
    await delay(killDelay)
    const ackedBeforeKill = acked.size
    await server.kill()
    stop.now = true
    await Promise.all(typing)
    // frames the server wrote before it died may still be delivered; they count (it persisted
    // them before sending). Then drop the old connections.
    for (const c of clients) c.destroyProvider()
    const ackedNow = new Set(acked)
    console.log(`round ${round}: SIGKILL after ${killDelay} ms; ${typed.size} markers typed so far, ` +
      `${ackedNow.size} acknowledged (${ackedBeforeKill} just before the kill)`)
    assert.ok(ackedNow.size > 0, 'no marker was acknowledged at all: the test proves nothing')

    await server.start()

    // 1. durability: the restarted server alone, before any old client brings its state back
    const fresh = new Client(server, docId, { token: owner.token, name: `fresh-r${round}` })
    t.after(() => fresh.destroy())
    await fresh.synced({ timeout: 60_000 })
    const persisted = fresh.text.toString()
    const persistedCounts = countMarkers(persisted)
    const lost = [...ackedNow].filter((m) => !persistedCounts.has(m))
    const dupAfterRestart = [...persistedCounts].filter(([, n]) => n > 1)
    console.log(`round ${round}: after restart the server has ${persistedCounts.size} markers; ` +
      `${lost.length} acknowledged markers lost`)
    assert.deepEqual(lost, [], `seed ${seed}, round ${round} (kill after ${killDelay} ms): ${lost.length} of ` +
      `${ackedNow.size} acknowledged markers are missing after the restart, e.g. ${lost.slice(0, 10).join(' ')}`)
    assert.deepEqual(dupAfterRestart, [], `markers duplicated in the persisted text after round ${round}`)

    // 2. everyone reconnects with the same Y.Doc (a new provider: the port changed)
    for (const c of clients) c.reconnectTo(server)
    await Promise.all(clients.map((c) => c.synced({ timeout: 60_000 })))
    await waitConverged([...clients, fresh], { timeout: 120_000, what: `convergence after restart ${round}` })

    const final = fresh.text.toString()
    const counts = countMarkers(final)
    const missing = [...typed.keys()].filter((m) => !counts.has(m))
    const duplicated = [...counts].filter(([, n]) => n > 1)
    const unknown = [...counts.keys()].filter((m) => !typed.has(m))
    assert.deepEqual(missing, [], `typed markers missing after reconnecting (round ${round})`)
    assert.deepEqual(duplicated, [], `markers that appear more than once (round ${round})`)
    assert.deepEqual(unknown, [], `markers nobody typed (round ${round})`)
    assert.equal(final.replace(MARKER, ''), '', `text outside markers (round ${round}): markers were torn apart\n${describeStates([['fresh', fresh.doc]])}`)
    console.log(`round ${round}: converged on ${counts.size} markers`)
    fresh.destroy()
  }
})
