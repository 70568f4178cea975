#!/usr/bin/env node
// Reference server for validating this harness without Vellum (VELLUM_NODE_TEST_TARGET=reference).
//
//   node lib/reference-server.mjs serve --host 127.0.0.1 --port 0 --data-dir DIR [--dev]
//
// The WebSocket side is the stock y-websocket server (@y/websocket-server, a devDependency:
// `setupWSConnection`). Around it, just enough of Vellum's contract to run the whole suite:
//  - REST: POST /api/auth/register, POST /api/documents, PATCH /api/documents/{id}/access;
//  - /ws/doc/{id}?token=…: 401 before the upgrade without a valid token, 403 without access,
//    viewers get a connection whose sync step 2 / update messages are dropped;
//  - persistence: every document update is appended synchronously to DIR/docs/<id>.log *before*
//    the stock server broadcasts it, so a marker a client received survives SIGKILL;
//  - prints `listening addr=127.0.0.1:PORT` to stderr.
// It is not a model of Vellum's internals, only of what the tests observe.
//
// REFERENCE_FAULT (comma-separated) breaks it on purpose, to check that the tests notice:
//   viewer-writes            viewers' updates are accepted like an editor's
//   viewer-step2             viewers' sync step 2 is accepted (only their live updates are dropped)
//   no-auth                  no 401/403: anyone may connect to any document
//   broadcast-before-persist updates are broadcast first and written 50 ms later
//   no-persist               nothing is written to disk
//   no-awareness             awareness messages from clients are dropped (so never relayed)

import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { WebSocketServer } from 'ws'
import * as Y from 'yjs'
import { setupWSConnection, setPersistence } from '@y/websocket-server/utils'

const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : dflt
}
const faults = new Set((process.env.REFERENCE_FAULT ?? '').split(',').filter(Boolean))
if (faults.size) console.error(`reference-server: WARN injected faults: ${[...faults].join(', ')}`)
const host = opt('--host', '127.0.0.1')
const port = Number(opt('--port', '0'))
const dataDir = opt('--data-dir', null)
if (!dataDir) {
  console.error('--data-dir is required')
  process.exit(2)
}
fs.mkdirSync(path.join(dataDir, 'docs'), { recursive: true })

// ---- accounts, documents and grants (a JSON file, rewritten on every change) -------------------
const statePath = path.join(dataDir, 'state.json')
const state = fs.existsSync(statePath)
  ? JSON.parse(fs.readFileSync(statePath, 'utf8'))
  : { users: [], docs: {} }
const save = () => {
  fs.writeFileSync(statePath + '.tmp', JSON.stringify(state))
  fs.renameSync(statePath + '.tmp', statePath)
}
const userByToken = (token) => state.users.find((u) => u.token === token) ?? null
const access = (user, docId) => {
  const doc = state.docs[docId]
  if (!doc) return null
  if (doc.ownerId === user.id || user.role === 'admin') return 'owner'
  return doc.grants[user.id] ?? null
}

// ---- persistence: synchronous append-only update log per document -----------------------------
const logPath = (docName) => path.join(dataDir, 'docs', encodeURIComponent(docName) + '.log')

function loadUpdates (file) {
  if (!fs.existsSync(file)) return []
  const buf = fs.readFileSync(file)
  const updates = []
  let off = 0
  while (off + 4 <= buf.length) {
    const len = buf.readUInt32LE(off)
    if (off + 4 + len > buf.length) break // torn tail after a crash
    updates.push(buf.subarray(off + 4, off + 4 + len))
    off += 4 + len
  }
  return updates
}

setPersistence({
  provider: null,
  bindState: (docName, ydoc) => {
    const file = logPath(docName)
    Y.transact(ydoc, () => {
      for (const u of loadUpdates(file)) Y.applyUpdate(ydoc, u)
    })
    const write = (update) => {
      const frame = Buffer.alloc(4 + update.length)
      frame.writeUInt32LE(update.length, 0)
      frame.set(update, 4)
      fs.appendFileSync(file, frame)
    }
    const persist = faults.has('no-persist')
      ? () => {}
      : faults.has('broadcast-before-persist') ? (update) => setTimeout(() => write(update), 50) : write
    // our listener must run before the stock broadcast listener: re-register those after it
    const others = [...(ydoc._observers.get('update') ?? [])]
    for (const f of others) ydoc.off('update', f)
    ydoc.on('update', persist)
    for (const f of others) ydoc.on('update', f)
  },
  writeState: async () => {}
})

// ---- HTTP ---------------------------------------------------------------------------------------
const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(body === undefined ? undefined : JSON.stringify(body))
}
const error = (res, status, code, message) => json(res, status, { error: { code, message } })
const readBody = (req) => new Promise((resolve, reject) => {
  let s = ''
  req.setEncoding('utf8')
  req.on('data', (c) => { s += c })
  req.on('end', () => {
    try {
      resolve(s ? JSON.parse(s) : {})
    } catch (e) {
      reject(e)
    }
  })
  req.on('error', reject)
})
const bearer = (req) => {
  const h = req.headers.authorization ?? ''
  return h.startsWith('Bearer ') ? userByToken(h.slice(7)) : null
}
const publicUser = (u) => ({ id: u.id, email: u.email, displayName: u.displayName, role: u.role })

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://x')
    if (req.method === 'POST' && url.pathname === '/api/auth/register') {
      const b = await readBody(req)
      if (typeof b.password !== 'string' || b.password.length < 8) return error(res, 422, 'VALIDATION', 'password too short')
      if (state.users.some((u) => u.email === b.email)) return error(res, 409, 'CONFLICT', 'email taken')
      const user = {
        id: crypto.randomUUID(),
        email: b.email,
        displayName: b.displayName,
        role: state.users.length === 0 ? 'admin' : 'author',
        token: crypto.randomBytes(24).toString('base64url')
      }
      state.users.push(user)
      save()
      return json(res, 201, { token: user.token, user: publicUser(user) })
    }
    if (req.method === 'POST' && url.pathname === '/api/documents') {
      const user = bearer(req)
      if (!user) return error(res, 401, 'UNAUTHENTICATED', 'sign in')
      const b = await readBody(req)
      const id = crypto.randomUUID()
      state.docs[id] = { id, title: b.title, ownerId: user.id, grants: {} }
      save()
      return json(res, 201, { id, title: b.title, ownerId: user.id })
    }
    const m = /^\/api\/documents\/([^/]+)\/access$/.exec(url.pathname)
    if (req.method === 'PATCH' && m) {
      const user = bearer(req)
      if (!user) return error(res, 401, 'UNAUTHENTICATED', 'sign in')
      const docId = decodeURIComponent(m[1])
      if (!state.docs[docId]) return error(res, 404, 'NOT_FOUND', 'no such document')
      if (access(user, docId) !== 'owner') return error(res, 403, 'FORBIDDEN', 'not the owner')
      const b = await readBody(req)
      const target = state.users.find((u) => u.email === b.userEmail)
      if (!target) return error(res, 404, 'NOT_FOUND', 'no such user')
      if (b.role !== 'viewer' && b.role !== 'editor') return error(res, 422, 'VALIDATION', 'bad role')
      state.docs[docId].grants[target.id] = b.role
      save()
      res.writeHead(204)
      return res.end()
    }
    return error(res, 404, 'NOT_FOUND', 'no route')
  } catch (err) {
    console.error(err)
    return error(res, 500, 'INTERNAL', String(err))
  }
})

// ---- WebSocket ----------------------------------------------------------------------------------
const wss = new WebSocketServer({ noServer: true })
const refuse = (socket, status, text) => {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
}

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://x')
  const m = /^\/ws\/doc\/([^/]+)$/.exec(url.pathname)
  if (!m) return refuse(socket, 404, 'Not Found')
  const docId = decodeURIComponent(m[1])
  const user = userByToken(url.searchParams.get('token') ?? '')
  let role = 'owner'
  if (!faults.has('no-auth')) {
    if (!user) return refuse(socket, 401, 'Unauthorized')
    if (!state.docs[docId]) return refuse(socket, 404, 'Not Found')
    role = access(user, docId)
    if (!role) return refuse(socket, 403, 'Forbidden')
  }
  const readOnly = role === 'viewer' && !faults.has('viewer-writes')
  const dropAwareness = faults.has('no-awareness')
  wss.handleUpgrade(req, socket, head, (conn) => {
    if (readOnly || dropAwareness) {
      // read-only: drop [messageSync, syncStep2 | syncUpdate] from this connection
      const on = conn.on.bind(conn)
      conn.on = (event, fn) => on(event, event !== 'message'
        ? fn
        : (data, isBinary) => {
            const b = new Uint8Array(data)
            if (readOnly && b[0] === 0 && (b[1] === 2 || (b[1] === 1 && !faults.has('viewer-step2')))) return
            if (dropAwareness && b[0] === 1) return
            fn(data, isBinary)
          })
    }
    setupWSConnection(conn, req, { docName: docId })
  })
})

server.listen(port, host, () => {
  const addr = server.address()
  console.error(`reference-server: INFO listening addr=${addr.address}:${addr.port}`)
})

const shutdown = () => {
  console.error('reference-server: shutting down')
  for (const c of wss.clients) c.terminate()
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
