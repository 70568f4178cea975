// A user with a 'viewer' grant gets a read-only connection: it receives every change, but its
// own updates are never applied, persisted or broadcast.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { useServer } from './lib/harness.mjs'
import { createDocument, register, share } from './lib/api.mjs'
import { Client, waitForDoc, watchConnection } from './lib/client.mjs'
import { insertParagraph } from './lib/edits.mjs'

const server = useServer('viewer')

function mark (client, tag) {
  client.doc.transact(() => {
    client.text.insert(client.text.length, `[${tag}]`)
    insertParagraph(client.xml, client.xml.length, `{${tag}}`)
  })
}
const inText = (client, tag) => client.text.toString().includes(`[${tag}]`)
const inXml = (client, tag) => client.xml.toString().includes(`{${tag}}`)
const hasMark = (client, tag) => inText(client, tag) && inXml(client, tag)
const hasAnyOf = (client, tag) => inText(client, tag) || inXml(client, tag)

function waitMark (client, tag) {
  return waitForDoc(client, () => hasMark(client, tag), { what: `mark ${tag}` })
}

function assertNoViewerEdits (clients, tags, when) {
  for (const c of clients) {
    for (const tag of tags) {
      assert.ok(!hasAnyOf(c, tag), `${c.name} received the viewer's edit ${tag} (${when}): ${c.text.toString()}`)
    }
  }
}

test('a viewer receives everything and its edits reach no one, not even after a restart', { timeout: 120_000 }, async (t) => {
  const owner = await register(server, 'owner')
  const editorUser = await register(server, 'editor')
  const viewerUser = await register(server, 'viewer')
  const { id: docId } = await createDocument(server, owner.token, 'viewer test')
  await share(server, owner.token, docId, editorUser.email, 'editor')
  await share(server, owner.token, docId, viewerUser.email, 'viewer')

  const o = new Client(server, docId, { token: owner.token, name: 'owner' })
  const e = new Client(server, docId, { token: editorUser.token, name: 'editor' })
  const v = new Client(server, docId, { token: viewerUser.token, name: 'viewer' })
  const all = [o, e, v]
  t.after(() => all.forEach((c) => c.destroy()))
  await Promise.all(all.map((c) => c.synced()))

  // the viewer receives what the owner writes
  mark(o, 'owner-1')
  await Promise.all([waitMark(e, 'owner-1'), waitMark(v, 'owner-1')])

  // the viewer writes (locally that works, as with any Y.Doc) ...
  const viewerConn = watchConnection(v)
  mark(v, 'viewer-1')
  v.text.insert(0, '[viewer-0]')
  v.text.delete(v.text.toString().indexOf('[owner-1]'), '[owner-1]'.length)
  assert.ok(!inText(v, 'owner-1'))
  // ... and once the server has handled it (the answer to a later request on the same socket)
  await v.roundTrip()

  // an editor's later change still reaches everyone, the viewer included
  mark(e, 'editor-1')
  await Promise.all([waitMark(o, 'editor-1'), waitMark(v, 'editor-1')])
  assertNoViewerEdits([o, e], ['viewer-1', 'viewer-0'], 'live')
  assert.ok(hasMark(o, 'owner-1') && hasMark(e, 'owner-1'), "the viewer's deletion was applied")
  viewerConn.stop()
  assert.deepEqual(viewerConn.log, [], 'the viewer was disconnected after its write attempt')
  assert.ok(v.provider.wsconnected)

  // on reconnecting, the viewer offers its whole local state in sync step 2: still ignored
  v.provider.disconnect()
  await v.disconnected()
  v.provider.connect()
  await v.synced()
  await v.roundTrip()
  mark(o, 'owner-2')
  await Promise.all([waitMark(e, 'owner-2'), waitMark(v, 'owner-2')])
  assertNoViewerEdits([o, e], ['viewer-1', 'viewer-0'], "after the viewer's resync")

  // nothing of it was persisted
  await server.restart()
  const fresh = new Client(server, docId, { token: owner.token, name: 'fresh-after-restart' })
  t.after(() => fresh.destroy())
  await fresh.synced()
  await waitForDoc(fresh, () => hasMark(fresh, 'owner-2') && hasMark(fresh, 'editor-1'), { what: 'persisted owner/editor edits' })
  assert.ok(hasMark(fresh, 'owner-1'), "the viewer's deletion was persisted")
  assertNoViewerEdits([fresh], ['viewer-1', 'viewer-0'], 'after a restart')

  // the viewer reconnects to the restarted server with its local edits: still nothing gets through,
  // and it still receives the editor's changes
  for (const c of all) c.reconnectTo(server)
  await Promise.all(all.map((c) => c.synced()))
  await v.roundTrip()
  mark(e, 'editor-2')
  await Promise.all([waitMark(o, 'editor-2'), waitMark(v, 'editor-2'), waitMark(fresh, 'editor-2')])
  assertNoViewerEdits([o, e, fresh], ['viewer-1', 'viewer-0'], 'after the viewer reconnected to the restarted server')

  const fresh2 = new Client(server, docId, { token: editorUser.token, name: 'fresh2' })
  t.after(() => fresh2.destroy())
  await fresh2.synced()
  await waitForDoc(fresh2, () => hasMark(fresh2, 'editor-2'), { what: 'editor-2' })
  assertNoViewerEdits([fresh2], ['viewer-1', 'viewer-0'], 'for a newcomer after all that')
  // the viewer still has its own local edits: they were not rolled back, just not accepted
  assert.ok(hasMark(v, 'viewer-1'))
})

test('an editor-granted user can write', { timeout: 60_000 }, async (t) => {
  const owner = await register(server, 'owner')
  const editorUser = await register(server, 'editor')
  const { id: docId } = await createDocument(server, owner.token, 'editor test')
  await share(server, owner.token, docId, editorUser.email, 'editor')
  const o = new Client(server, docId, { token: owner.token, name: 'owner' })
  const e = new Client(server, docId, { token: editorUser.token, name: 'editor' })
  t.after(() => [o, e].forEach((c) => c.destroy()))
  await Promise.all([o.synced(), e.synced()])
  mark(e, 'from-editor')
  await waitMark(o, 'from-editor')
})
