// Versions, restore and setBody against live y-websocket clients, and the documentChanged /
// versionCreated subscriptions over graphql-ws.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { subscribe as subscribeTo } from './lib/subscription.mjs'
import { useServer } from './lib/harness.mjs'
import { createDocument, register, share } from './lib/api.mjs'
import { Client, waitConverged, waitForDoc } from './lib/client.mjs'
import { insertParagraph } from './lib/edits.mjs'
import { isReference } from './lib/server.mjs'
import { delay } from './lib/wait.mjs'

let admin
const server = useServer('versions', async () => {
  admin = await register(server, 'admin') // the first user: may publish
})
const skip = isReference && 'versions and GraphQL are Vellum features'

async function gql (token, query, variables = {}) {
  const res = await fetch(`${server.httpUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables })
  })
  const body = await res.json()
  if (body.errors) throw new Error(`${query.slice(0, 60)}…: ${JSON.stringify(body.errors)}`)
  return body.data
}

/** The text of each paragraph of a client's body, in order. */
function paragraphs (client) {
  return client.xml.toArray().map((p) =>
    p instanceof Y.XmlElement
      ? p.toArray().map((t) => (t instanceof Y.XmlText ? t.toDelta().map((d) => d.insert).join('') : '')).join('')
      : '')
}

/** Types `text` at the end of the first paragraph starting with `prefix`, one character
 * per transaction (looked up again for each: a restore may replace the paragraph). */
async function type (client, prefix, text, { pauseMs = 2 } = {}) {
  for (const ch of text) {
    const index = paragraphs(client).findIndex((p) => p.startsWith(prefix))
    assert.ok(index >= 0, `${client.name} has no paragraph starting with ${prefix}: ${paragraphs(client)}`)
    const t = client.xml.get(index).get(0)
    t.insert(t.length, ch)
    await delay(pauseMs)
  }
}

async function serverText (token, docId) {
  const d = await gql(token, 'query($d: ID!) { document(id: $d, draft: true) { body { text } } }', { d: docId })
  return d.document.body.text
}

test('restore reaches every live editor at once, keeps what is typed afterwards, and the database agrees', { skip, timeout: 60_000 }, async (t) => {
  const owner = await register(server, 'owner')
  const editor = await register(server, 'editor')
  const restorer = await register(server, 'restorer')
  const { id } = await createDocument(server, owner.token, 'restore test')
  await share(server, owner.token, id, editor.email, 'editor')
  await share(server, owner.token, id, restorer.email, 'editor')
  const a = new Client(server, id, { token: owner.token, name: 'a' })
  const b = new Client(server, id, { token: editor.token, name: 'b' })
  t.after(() => { a.destroy(); b.destroy() })
  await Promise.all([a.synced(), b.synced()])

  a.doc.transact(() => {
    insertParagraph(a.xml, 0, 'alpha')
    insertParagraph(a.xml, 1, 'beta')
  })
  await a.roundTrip() // stored before the version is taken
  const saved = await gql(owner.token, 'mutation($d: ID!) { saveVersion(documentId: $d, label: "v1") { id number } }', { d: id })
  assert.equal(saved.saveVersion.number, 1)
  await waitConverged([a, b])

  // both type before the restore
  insertParagraph(a.xml, a.xml.length, 'gamma from a')
  insertParagraph(b.xml, 0, 'delta from b')
  await Promise.all([a.roundTrip(), b.roundTrip()])

  // a third user restores while both keep typing in "alpha"
  const typing = Promise.all([type(a, 'alpha', 'XY'), type(b, 'alpha', 'Z')])
  const restored = await gql(restorer.token, 'mutation($v: ID!) { restoreVersion(versionId: $v) { number label restoredFrom } }', { v: saved.saveVersion.id })
  await typing
  assert.deepEqual(restored.restoreVersion, { number: 2, label: 'Restored v1: v1', restoredFrom: 1 })
  await waitConverged([a, b], { what: 'convergence after a restore during typing' })
  for (const c of [a, b]) {
    const ps = paragraphs(c)
    assert.ok(!ps.includes('gamma from a') && !ps.includes('delta from b'), `${c.name} still has pre-restore typing: ${ps}`)
    assert.ok(ps.some((p) => p.startsWith('alpha')) && ps.includes('beta'), `${c.name} lacks the restored text: ${ps}`)
  }

  // typing after the restore is kept
  insertParagraph(a.xml, a.xml.length, 'after from a')
  insertParagraph(b.xml, 0, 'after from b')
  await waitConverged([a, b])
  await Promise.all([a.roundTrip(), b.roundTrip()])
  const ps = paragraphs(a)
  assert.ok(ps.includes('after from a') && ps.includes('after from b'), `lost typing: ${ps}`)
  assert.equal(await serverText(owner.token, id), ps.join('\n\n'), 'the database differs from the editors')
})

test('setBody while a client types in another paragraph: both changes survive', { skip, timeout: 60_000 }, async (t) => {
  const owner = await register(server, 'owner')
  const { id } = await createDocument(server, owner.token, 'setBody test')
  const writer = new Client(server, id, { token: owner.token, name: 'writer' })
  t.after(() => writer.destroy())
  await writer.synced()
  writer.doc.transact(() => {
    insertParagraph(writer.xml, 0, 'Intro')
    insertParagraph(writer.xml, 1, 'Body:')
  })
  await writer.roundTrip()
  // the API caller reads the body, the editor keeps typing in "Body:" meanwhile
  const read = await gql(owner.token, 'query($d: ID!) { document(id: $d, draft: true) { body { json } } }', { d: id })
  const base = read.document.body.json
  const edited = structuredClone(base)
  edited.content[0].content[0].text = 'Intro, rewritten by the API'
  const typing = type(writer, 'Body:', ' typed live', { pauseMs: 5 })
  await delay(20) // some keystrokes reach the server before the API call, some after
  await gql(owner.token, 'mutation($d: ID!, $i: BodyInput!, $b: BodyInput) { setBody(documentId: $d, input: $i, base: $b) { id } }',
    { d: id, i: { json: edited }, b: { json: base } })
  await typing
  await waitForDoc(writer, (c) => paragraphs(c)[0] === 'Intro, rewritten by the API', { what: 'the API change to arrive' })
  await writer.roundTrip()
  assert.deepEqual(paragraphs(writer), ['Intro, rewritten by the API', 'Body: typed live'])
  assert.equal(await serverText(owner.token, id), 'Intro, rewritten by the API\n\nBody: typed live')
})

const CHANGED = 'subscription($d: ID!) { documentChanged(id: $d) { kind document { id title lockVersion } } }'
const CREATED = 'subscription($d: ID!) { versionCreated(documentId: $d) { number label } }'
const subscribe = (token, query, variables) => subscribeTo(server, token, query, variables)

test('documentChanged and versionCreated report changes made over REST, GraphQL and y-websocket, and nothing to strangers', { skip, timeout: 60_000 }, async (t) => {
  const owner = await register(server, 'owner')
  const stranger = await register(server, 'stranger')
  const { id } = await createDocument(server, owner.token, 'events')
  const changes = subscribe(owner.token, CHANGED, { d: id })
  const versions = subscribe(owner.token, CREATED, { d: id })
  const denied = subscribe(stranger.token, CHANGED, { d: id })
  t.after(() => { changes.dispose(); versions.dispose(); denied.dispose() })

  const refused = await denied.next()
  assert.equal(refused.errors?.[0]?.extensions?.code, 'NOT_FOUND', JSON.stringify(refused))

  // wait until both subscriptions are live (a change before that is missed by design)
  const live = async (sub, poke) => {
    for (let i = 0; ; i++) {
      await poke(i)
      if (await sub.next(2000).then(() => true, () => false)) return
    }
  }
  let probes = 0
  await live(versions, () => gql(owner.token, 'mutation($d: ID!) { saveVersion(documentId: $d, label: "probe") { id } }', { d: id }).then(() => probes++))
  const rename = async (title) => {
    const doc = await (await fetch(`${server.httpUrl}/api/documents/${id}`, { headers: { authorization: `Bearer ${owner.token}` } })).json()
    const res = await fetch(`${server.httpUrl}/api/documents/${id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${owner.token}` },
      body: JSON.stringify({ lockVersion: doc.lockVersion, title })
    })
    assert.equal(res.status, 200)
  }
  await live(changes, (i) => rename(`probe ${i}`))

  // metadata over REST
  await rename('Renamed over REST')
  await changes.until((d) => d.documentChanged.kind === 'METADATA' && d.documentChanged.document.title === 'Renamed over REST', 'the REST rename')

  // content over y-websocket: many stored updates, a few events per second
  const c = new Client(server, id, { token: owner.token, name: 'typist' })
  t.after(() => c.destroy())
  await c.synced()
  insertParagraph(c.xml, 0, 'x')
  const started = Date.now()
  for (let i = 0; i < 40; i++) {
    c.xml.get(0).get(0).insert(1, 'y')
    await c.roundTrip() // each keystroke is its own stored update
  }
  const elapsed = (Date.now() - started) / 1000
  await rename('after typing') // content events still owed are sent before this one
  const kinds = []
  await changes.until((d) => kinds.push(d.documentChanged.kind) && d.documentChanged.document.title === 'after typing', 'the rename after typing')
  const content = kinds.filter((k) => k === 'CONTENT').length
  assert.ok(content >= 1, `no CONTENT event for y-websocket edits: ${kinds}`)
  // the default is 4 per second: the first at once, then one per 250 ms
  assert.ok(content <= Math.ceil(elapsed * 4) + 1, `${content} CONTENT events for 40 updates in ${elapsed} s: not coalesced`)

  // content over GraphQL, then a version and publishing over GraphQL
  await gql(owner.token, 'mutation($d: ID!) { setBody(documentId: $d, input: { markdown: "from the API" }) { id } }', { d: id })
  await gql(admin.token, 'mutation($d: ID!) { publish(documentId: $d, label: "live") { status } }', { d: id })
  const later = []
  await changes.until((d) => later.push(d.documentChanged.kind) && d.documentChanged.kind === 'PUBLISHED', 'PUBLISHED')
  assert.ok(later.includes('CONTENT'), `no CONTENT event for setBody: ${later}`)
  const created = await versions.until((d) => d.versionCreated.label === 'live', 'the version publishing saved')
  assert.equal(created.versionCreated.number, probes + 1)

  // deletion ends the stream
  await gql(owner.token, 'mutation($d: ID!) { deleteDocument(id: $d) }', { d: id })
  for (;;) {
    const ev = await changes.next()
    if (ev.complete || ev.data?.documentChanged?.kind === 'DELETED') break
  }
  assert.deepEqual(denied.dataEvents(), [], 'the stranger got events')
})
