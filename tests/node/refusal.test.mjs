// Connections without valid credentials, or without access to the document, are refused with an
// HTTP status before the WebSocket upgrade.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import WebSocket from 'ws'
import { JWT_SECRET } from './lib/server.mjs'
import { useServer } from './lib/harness.mjs'
import { createDocument, register } from './lib/api.mjs'
import { Client } from './lib/client.mjs'

let owner, stranger, docId
const server = useServer('refusal', async () => {
  owner = await register(server, 'owner')
  stranger = await register(server, 'stranger')
  docId = (await createDocument(server, owner.token, 'private')).id
})

/**
 * Open a raw WebSocket and report how the handshake ended: `{ status }` from the
 * 'unexpected-response' event when the server answered with a non-101 response, or
 * `{ opened: true }` if the upgrade was accepted.
 */
function handshake (url, { timeout = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    let done = false
    const finish = (err, value) => {
      if (done) return
      done = true
      clearTimeout(timer)
      ws.removeAllListeners('error')
      ws.on('error', () => {}) // aborting a handshake is reported as an error: ignore it
      if (ws.readyState === WebSocket.OPEN) ws.close()
      else ws.terminate()
      if (err) reject(err)
      else resolve(value)
    }
    const timer = setTimeout(() => finish(new Error(`no handshake result from ${url} within ${timeout} ms`)), timeout)
    ws.on('unexpected-response', (_req, res) => {
      res.resume()
      finish(null, { status: res.statusCode })
    })
    ws.on('upgrade', () => {})
    ws.on('open', () => finish(null, { opened: true }))
    ws.on('error', (err) => finish(err))
  })
}

const docUrl = (query = '') => server.docUrl(docId) + query

/** An HS256 JWT for the stranger, signed with a secret other than the server's. */
function forgedToken () {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const body = `${b64({ typ: 'JWT', alg: 'HS256' })}.${b64({ sub: stranger.user.id, iss: 'vellum', aud: 'vellum', iat: now, exp: now + 3600 })}`
  const sig = crypto.createHmac('sha256', JWT_SECRET.split('').reverse().join('')).update(body).digest('base64url')
  return `${body}.${sig}`
}

test('no token: 401 before the upgrade', async () => {
  assert.deepEqual(await handshake(docUrl()), { status: 401 })
})

test('empty token: 401 before the upgrade', async () => {
  assert.deepEqual(await handshake(docUrl('?token=')), { status: 401 })
})

test('garbage token: 401 before the upgrade', async () => {
  assert.deepEqual(await handshake(docUrl('?token=garbage')), { status: 401 })
})

test('token signed with another secret: 401 before the upgrade', async () => {
  assert.deepEqual(await handshake(docUrl(`?token=${forgedToken()}`)), { status: 401 })
})

test('valid user without access to the document: 403 before the upgrade', async () => {
  assert.deepEqual(await handshake(docUrl(`?token=${encodeURIComponent(stranger.token)}`)), { status: 403 })
})

test('control: the owner gets the upgrade', async () => {
  assert.deepEqual(await handshake(docUrl(`?token=${encodeURIComponent(owner.token)}`)), { opened: true })
})

test('a refused stock client never syncs and never receives content', { timeout: 30_000 }, async (t) => {
  // the owner writes something the stranger must not see
  const o = new Client(server, docId, { token: owner.token, name: 'owner' })
  t.after(() => o.destroy())
  await o.synced()
  o.text.insert(0, 'secret')
  await o.roundTrip()

  const s = new Client(server, docId, { token: stranger.token, name: 'stranger' })
  t.after(() => s.destroy())
  // the provider retries with backoff; wait for a few refused attempts
  let errors = 0
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${errors} refused attempts in 20 s; events: ${s.events.join('; ')}`)), 20_000)
    s.provider.on('connection-close', () => {
      if (++errors >= 3) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  assert.equal(s.provider.synced, false)
  assert.equal(s.text.toString(), '')
  assert.ok(!s.events.some((e) => e.includes('status connected')), `the stranger connected: ${s.events.join('; ')}`)
})
