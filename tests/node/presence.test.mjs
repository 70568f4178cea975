// Presence over GraphQL: a graphql-ws client subscribes to presenceChanged (graphql-transport-ws
// on GET /graphql, authenticated in connection_init) while stock y-websocket clients come and go.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { subscribe as subscribeTo } from './lib/subscription.mjs'
import { useServer } from './lib/harness.mjs'
import { createDocument, register, share } from './lib/api.mjs'
import { Client } from './lib/client.mjs'
import { isReference } from './lib/server.mjs'

const server = useServer('presence')

const PRESENCE = `subscription($d: ID!) { presenceChanged(documentId: $d) { userId displayName readOnly name color cursor } }`

const subscribe = (token, docId) => subscribeTo(server, token, PRESENCE, { d: docId })

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
  const joined = await sub.until((d) => d.presenceChanged.some((p) => p.name === 'Eve'), 'Eve appears').then((d) => d.presenceChanged)
  const entry = joined.find((p) => p.name === 'Eve')
  assert.equal(entry.userId, editor.user.id)
  assert.equal(entry.color, '#0000ff')
  assert.equal(entry.readOnly, false)

  eve.provider.awareness.setLocalStateField('cursor', { anchor: 3, head: 5 })
  await sub.until((d) => d.presenceChanged.some((p) => p.cursor?.head === 5), 'the cursor moves')

  const denied = subscribe(stranger.token, docId)
  const ev = await denied.next()
  assert.ok(ev.errors?.length, `a stranger gets an error, not events: ${JSON.stringify(ev)}`)
  assert.equal(ev.errors[0].extensions?.code, 'NOT_FOUND', JSON.stringify(ev.errors))
  denied.dispose()

  eve.provider.destroy()
  await sub.until((d) => d.presenceChanged.length === 0, 'Eve leaves')
  sub.dispose()
})
