// Presence over GraphQL: a graphql-ws client subscribes to presenceChanged (graphql-transport-ws
// on GET /graphql, authenticated in connection_init) while stock y-websocket clients come and go.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { createClient } from 'graphql-ws'
import { useServer } from './lib/harness.mjs'
import { createDocument, register, share } from './lib/api.mjs'
import { Client } from './lib/client.mjs'
import { isReference } from './lib/server.mjs'

const server = useServer('presence')

const PRESENCE = `subscription($d: ID!) { presenceChanged(documentId: $d) { userId displayName readOnly name color cursor } }`

/** Subscribes and returns an async queue of events (or errors). */
function subscribe (token, docId) {
  const client = createClient({
    url: `ws://127.0.0.1:${server.port}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { token },
    retryAttempts: 0,
    lazy: false
  })
  const queue = []
  const waiters = []
  const push = (item) => {
    const w = waiters.shift()
    if (w) w(item)
    else queue.push(item)
  }
  client.subscribe({ query: PRESENCE, variables: { d: docId } }, {
    next: (v) => push(v),
    error: (e) => push({ errors: Array.isArray(e) ? e : [{ message: String(e?.message ?? e?.reason ?? e) }] }),
    complete: () => push({ complete: true })
  })
  return {
    next (timeout = 10_000) {
      if (queue.length) return Promise.resolve(queue.shift())
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no presence event within ' + timeout + ' ms')), timeout)
        waiters.push((v) => { clearTimeout(t); resolve(v) })
      })
    },
    /** Waits for an event matching `pred`, skipping others (presence changes come in bursts). */
    async until (pred, what) {
      for (;;) {
        const ev = await this.next()
        assert.ok(!ev.errors, `${what}: ${JSON.stringify(ev.errors)}`)
        if (pred(ev.data.presenceChanged)) return ev.data.presenceChanged
      }
    },
    dispose: () => client.dispose()
  }
}

test('presenceChanged follows clients joining, moving and leaving; strangers get an error', { skip: isReference && 'no GraphQL on the reference server', timeout: 60_000 }, async () => {
  const owner = await register(server, 'owner')
  const editor = await register(server, 'editor')
  const stranger = await register(server, 'stranger')
  const { id: docId } = await createDocument(server, owner.token, 'presence')
  await share(server, owner.token, docId, editor.email, 'editor')

  const sub = subscribe(owner.token, docId)
  const first = await sub.next()
  assert.deepEqual(first.data?.presenceChanged, [], `nobody is there yet: ${JSON.stringify(first)}`)

  const eve = new Client(server, docId, { token: editor.token, name: 'eve' })
  await eve.synced()
  eve.provider.awareness.setLocalStateField('user', { name: 'Eve', color: '#0000ff' })
  const joined = await sub.until((list) => list.some((p) => p.name === 'Eve'), 'Eve appears')
  const entry = joined.find((p) => p.name === 'Eve')
  assert.equal(entry.userId, editor.user.id)
  assert.equal(entry.color, '#0000ff')
  assert.equal(entry.readOnly, false)

  eve.provider.awareness.setLocalStateField('cursor', { anchor: 3, head: 5 })
  await sub.until((list) => list.some((p) => p.cursor?.head === 5), 'the cursor moves')

  const denied = subscribe(stranger.token, docId)
  const ev = await denied.next()
  assert.ok(ev.errors?.length, `a stranger gets an error, not events: ${JSON.stringify(ev)}`)
  assert.equal(ev.errors[0].extensions?.code, 'NOT_FOUND', JSON.stringify(ev.errors))
  denied.dispose()

  eve.provider.destroy()
  await sub.until((list) => list.length === 0, 'Eve leaves')
  sub.dispose()
})
