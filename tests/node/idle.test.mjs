// Idle connections stay up. The stock y-websocket client closes a connection on which it received
// no message for 30 s, and relies on the server relaying awareness renewals (each client renews
// its awareness state every 15 s) to hear something. WebSocket pings do not count: the client
// never sees them. So a server that does not relay awareness (back to the sender too, when it is
// alone) makes idle clients reconnect every ~30 s.
//
// This file takes ~65 s of wall time but almost no CPU; `node --test --test-concurrency=N` runs it
// alongside the other files.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { useServer } from './lib/harness.mjs'
import { createDocument, register } from './lib/api.mjs'
import { Client, waitForDoc, watchConnection } from './lib/client.mjs'
import { waitForEvent } from './lib/wait.mjs'

const IDLE_MS = Number(process.env.IDLE_MS || 65_000)

let owner
const server = useServer('idle', async () => {
  owner = await register(server, 'owner')
})

test(`idle clients stay connected for ${IDLE_MS / 1000} s`, { timeout: IDLE_MS + 60_000 }, async (t) => {
  // one client alone on its document, and two clients sharing another
  const { id: lonelyDoc } = await createDocument(server, owner.token, 'idle alone')
  const { id: sharedDoc } = await createDocument(server, owner.token, 'idle pair')
  const clients = [
    new Client(server, lonelyDoc, { token: owner.token, name: 'alone' }),
    new Client(server, sharedDoc, { token: owner.token, name: 'pair-a' }),
    new Client(server, sharedDoc, { token: owner.token, name: 'pair-b' })
  ]
  t.after(() => clients.forEach((c) => c.destroy()))
  await Promise.all(clients.map((c) => c.synced()))

  const watches = clients.map((c) => watchConnection(c))
  const started = Date.now()
  // Nothing to await but the passing of time: the test is that nothing happens. Any close ends
  // the wait early, so a failure is reported as soon as it happens.
  const firstClose = Promise.race(clients.map((c) => waitForEvent(c.provider, 'connection-close', { timeout: IDLE_MS + 30_000 }).then(() => c)))
  firstClose.catch(() => {})
  const outcome = await Promise.race([
    firstClose.then((c) => ({ closed: c })),
    new Promise((resolve) => setTimeout(() => resolve({ closed: null }), IDLE_MS))
  ])
  watches.forEach((w) => w.stop())
  const elapsed = ((Date.now() - started) / 1000).toFixed(1)
  if (outcome.closed) {
    assert.fail(`${outcome.closed.name} lost its connection after ${elapsed} s idle: ${outcome.closed.events.slice(-6).join('; ')}`)
  }
  clients.forEach((c, i) => {
    assert.equal(c.provider.wsconnected, true, `${c.name} is not connected after ${elapsed} s`)
    assert.deepEqual(watches[i].log, [], `${c.name} changed state while idle`)
  })

  // and the connections still work
  clients[1].text.insert(0, 'still here')
  await waitForDoc(clients[2], (c) => c.text.toString() === 'still here', { what: 'an edit after the idle period' })
  clients[0].text.insert(0, 'me too')
  await clients[0].roundTrip()
})
