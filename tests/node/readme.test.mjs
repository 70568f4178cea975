// The README keeps its promises: its two commands are the ones we say, the binary's default
// command serves what "Run it" describes, and every GraphQL example in README.md,
// docs/frontend.md and docs/plugins.md runs without errors against a real server, as does
// the README's y-websocket client.
//
// Examples use placeholders in angle brackets (documented in docs/frontend.md, "Examples"):
// "<id>", "<other-id>", "<version-id>", <lock-version>, "<email>", "<user-id>",
// "<token-id>". Each is replaced with a real value just before its operation runs; an
// unknown placeholder fails the test, so the list in the docs stays the list here.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Kind, parse, print } from 'graphql'
import { useServer } from './lib/harness.mjs'
import { createDocument, register } from './lib/api.mjs'
import { isReference, repoRoot, vellumBinary } from './lib/server.mjs'
import { subscribe } from './lib/subscription.mjs'
import { pollUntil, waitForEvent } from './lib/wait.mjs'

const skip = isReference && 'the README describes Vellum, not the reference server'
const DOCS = ['README.md', 'docs/frontend.md', 'docs/plugins.md']
const read = (file) => fs.readFileSync(path.join(repoRoot, file), 'utf8')

/** Fenced blocks of `lang` in `text`: [{ body, line }] (line: 1-based, of the opening fence). */
function fencedBlocks (text, lang) {
  const blocks = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```' + lang) continue
    const start = i
    const body = []
    for (i++; i < lines.length && lines[i].trim() !== '```'; i++) body.push(lines[i])
    blocks.push({ body: body.join('\n'), line: start + 1 })
  }
  return blocks
}

// ---- the commands -----------------------------------------------------------------------------

test('the README gives the two commands, and they are what CI runs', () => {
  const readme = read('README.md')
  const sh = fencedBlocks(readme, 'sh').map((b) => b.body.trim())
  assert.ok(sh.includes('cargo run --release'), 'a ```sh block holding exactly `cargo run --release`')
  assert.ok(sh.includes('scripts/test'), 'a ```sh block holding exactly `scripts/test`')

  const script = path.join(repoRoot, 'scripts/test')
  assert.ok(fs.statSync(script).mode & 0o111, 'scripts/test is executable')
  assert.match(read('scripts/test'), /^\(cd tests\/node && npm test\)$/m, 'scripts/test runs this suite (npm test in tests/node)')
  assert.match(read('.ci/run'), /^scripts\/test$/m, '.ci/run calls scripts/test')
})

test('with no arguments the binary serves: embedded SQLite, a generated secret, the admin UI, the example plugins', { skip, timeout: 120_000 }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vellum-readme-'))
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) =>
    !k.startsWith('VELLUM_') && !['DATABASE_URL', 'REDIS_URL', 'JWT_SECRET'].includes(k)))
  Object.assign(env, { VELLUM_HOST: '127.0.0.1', VELLUM_PORT: '0', VELLUM_DATA_DIR: dataDir, RUST_LOG: 'info', NO_COLOR: '1' })
  const proc = spawn(vellumBinary(), [], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })))
  let log = ''
  try {
    const port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no 'listening' line within 60 s:\n${log}`)), 60_000)
      const onData = (chunk) => {
        log += chunk
        const m = /listening.*?addr=127\.0\.0\.1:(\d+)/.exec(log)
        if (m) { clearTimeout(timer); resolve(Number(m[1])) }
      }
      proc.stdout.on('data', onData)
      proc.stderr.on('data', onData)
      proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited with ${code} before listening:\n${log}`)) })
    })
    const base = `http://127.0.0.1:${port}`
    assert.ok(fs.existsSync(path.join(dataDir, 'vellum.db')), 'the SQLite database is in the data directory')
    assert.ok(fs.existsSync(path.join(dataDir, 'jwt_secret')), 'a signing secret was generated')

    const ui = await fetch(`${base}/`)
    assert.equal(ui.status, 200)
    assert.match(ui.headers.get('content-type') ?? '', /text\/html/, 'the admin UI is served at /')

    const res = await fetch(`${base}/api/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'you@example.com', password: 'a long password', displayName: 'You' })
    })
    assert.equal(res.status, 201, await res.clone().text())
    const { token, user } = await res.json()
    assert.equal(user.role, 'admin', 'the first account is the admin')
    const plugins = await gqlAt(base, token, '{ plugins { name source status } }')
    const names = plugins.data.plugins.filter((p) => p.source === 'bundled').map((p) => p.name).sort()
    assert.deepEqual(names, ['banned-words', 'heading-anchors', 'slugify', 'word-count'], 'the four example plugins are built in')
    assert.ok(plugins.data.plugins.every((p) => p.status === 'DISABLED'), 'and start disabled')
  } finally {
    proc.kill('SIGTERM')
    await exited
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
})

// ---- the examples -----------------------------------------------------------------------------

async function gqlAt (base, token, query, variables = {}) {
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables })
  })
  assert.equal(res.status, 200, `HTTP ${res.status} for ${query}`)
  return await res.json()
}

let admin, other, docId, firstVersionId
const server = useServer('readme', async () => {
  if (isReference) return
  admin = await register(server, 'admin') // the first account: the admin
  other = await register(server, 'other')
  ;({ id: docId } = await createDocument(server, admin.token, 'Hello world'))
  await gql(`mutation ($d: ID!) { setBody(documentId: $d, input: { markdown: "# Hello\\n\\nFirst paragraph." }) { id } }`, { d: docId })
  firstVersionId = (await gql('mutation ($d: ID!) { saveVersion(documentId: $d, label: "First version") { id } }', { d: docId })).saveVersion.id
  await gql('mutation ($d: ID!) { publish(documentId: $d) { status } }', { d: docId })
})

/** Runs `query` as the admin; fails on any error. */
async function gql (query, variables = {}) {
  const body = await gqlAt(server.httpUrl, admin.token, query, variables)
  assert.ok(!body.errors, `${query}\n→ ${JSON.stringify(body.errors)}`)
  return body.data
}

let scratch = 0
const lockVersion = async () => (await gql('query ($d: ID!) { document(id: $d, draft: true) { lockVersion } }', { d: docId })).document.lockVersion
const PLACEHOLDERS = {
  id: async () => docId,
  'other-id': async () => (await createDocument(server, admin.token, `Scratch ${++scratch}`)).id,
  'version-id': async () => firstVersionId,
  'lock-version': lockVersion,
  email: async () => other.email,
  'user-id': async () => admin.user.id,
  'token-id': async () => (await gql('mutation { createApiToken(name: "to revoke") { apiToken { id } } }')).createApiToken.apiToken.id
}
const PLACEHOLDER = /<([a-z][a-z0-9-]*)>/g

/** Replaces every placeholder of `text` (quoted or bare) with its value. */
async function fill (text) {
  let out = ''
  let last = 0
  for (const m of text.matchAll(/"<([a-z][a-z0-9-]*)>"|<([a-z][a-z0-9-]*)>/g)) {
    const quoted = m[1] !== undefined
    const name = m[1] ?? m[2]
    // a bare <name> inside a string (HTML in a setBody example) is not a placeholder
    if (!quoted && insideString(text, m.index)) continue
    const value = PLACEHOLDERS[name]
    assert.ok(value, `unknown placeholder <${name}> (known: ${Object.keys(PLACEHOLDERS).join(', ')}; see docs/frontend.md, "Examples")`)
    const v = await value()
    out += text.slice(last, m.index) + (quoted ? JSON.stringify(String(v)) : String(v))
    last = m.index + m[0].length
  }
  return out + text.slice(last)
}

/** Whether offset `at` of a GraphQL text is inside a "…" string (comments skipped). */
function insideString (text, at) {
  let inString = false
  for (let i = 0; i < at; i++) {
    const c = text[i]
    if (inString) {
      if (c === '\\') i++
      else if (c === '"') inString = false
    } else if (c === '"') inString = true
    else if (c === '#') while (i < at && text[i] !== '\n') i++
  }
  return inString
}

/** The operations of a block, each as its own source text (with the block's fragments). */
function operations (block) {
  // Bare placeholders are not GraphQL: stand in digits of the same length to find the operations.
  const parseable = block.replace(PLACEHOLDER, (m, _name, at) => insideString(block, at) ? m : '1'.repeat(m.length))
  const doc = parse(parseable)
  const slice = (def) => block.slice(def.loc.start, def.loc.end)
  const fragments = doc.definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION).map(slice)
  return doc.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION)
    .map((d) => ({ kind: d.operation, source: [slice(d), ...fragments].join('\n') }))
}

async function runOperation ({ kind, source }, where) {
  const query = print(parse(await fill(source)))
  if (kind !== 'subscription') {
    const body = await gqlAt(server.httpUrl, admin.token, query)
    assert.ok(!body.errors, `${where}: ${query}\n→ ${JSON.stringify(body.errors)}`)
    assert.ok(body.data, `${where}: no data for ${query}`)
    return
  }
  // A subscription: subscribe, then make something happen until the first event arrives.
  const sub = subscribe(server, admin.token, query)
  try {
    for (let attempt = 1; ; attempt++) {
      await gql('mutation ($d: ID!, $l: String!) { saveVersion(documentId: $d, label: $l) { id } }', { d: docId, l: `event ${attempt}` })
      await gql('mutation ($d: ID!, $t: String!, $v: Int!) { updateDocument(id: $d, input: { title: $t }, lockVersion: $v) { id } }',
        { d: docId, t: `Hello world ${attempt}`, v: await lockVersion() })
      const event = await sub.next(2_000).catch(() => null)
      if (event) {
        assert.ok(!event.errors && !event.complete && event.data, `${where}: ${query}\n→ ${JSON.stringify(event)}`)
        return
      }
      assert.ok(attempt < 5, `${where}: no event for ${query}`)
    }
  } finally {
    sub.dispose()
  }
}

for (const file of DOCS) {
  test(`every GraphQL example in ${file} runs without errors`, { skip, timeout: 120_000 }, async (t) => {
    const blocks = fencedBlocks(read(file), 'graphql')
    assert.ok(blocks.length > 0, `${file} has GraphQL examples`)
    for (const block of blocks) {
      const ops = operations(block.body)
      assert.ok(ops.length > 0, `${file}:${block.line}: an example with no operation`)
      await t.test(`${file}:${block.line} (${ops.map((o) => o.kind).join(', ')})`, async () => {
        for (const op of ops) await runOperation(op, `${file}:${block.line}`)
      })
    }
  })
}

test('the README\'s curl examples of /graphql run without errors', { skip }, async () => {
  const calls = fencedBlocks(read('README.md'), 'sh')
    .map((b) => b.body.replace(/\\\n\s*/g, ' '))
    .flatMap((body) => [...body.matchAll(/curl [^\n]*\/graphql[^\n]*?-d '([^']*)'/g)].map((m) => JSON.parse(m[1])))
  assert.ok(calls.length > 0, 'the README posts a query to /graphql with curl')
  for (const { query } of calls) {
    const body = await gqlAt(server.httpUrl, admin.token, await fill(query))
    assert.ok(!body.errors, `${query}\n→ ${JSON.stringify(body.errors)}`)
  }
})

const missing = ['bash', 'curl', 'jq'].filter((cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0)
test('the tour\'s shell commands sign in and query GraphQL', { skip: skip || (missing.length > 0 && `needs ${missing.join(', ')}`) }, async () => {
  const block = fencedBlocks(read('README.md'), 'sh').map((b) => b.body).find((b) => b.includes('TOKEN=$(curl'))
  assert.ok(block, 'the tour signs in with curl')
  // The tour's step 1 made this account in the admin UI; here it is made over REST.
  const { email, password } = JSON.parse(/-d '(\{"email"[^']*\})'/.exec(block)[1])
  const res = await fetch(`${server.httpUrl}/api/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password, displayName: 'You' })
  })
  assert.equal(res.status, 201, await res.text())
  const run = spawnSync('bash', ['-euo', 'pipefail', '-c', block.replaceAll('localhost:8000', `127.0.0.1:${server.port}`)], { encoding: 'utf8' })
  assert.equal(run.status, 0, run.stderr)
  const answer = JSON.parse(run.stdout.trim().split('\n').pop())
  assert.ok(!answer.errors && answer.data, `the query answered ${run.stdout}`)
})

test('the README\'s y-websocket client edits the document', { skip, timeout: 60_000 }, async () => {
  const snippet = fencedBlocks(read('README.md'), 'js').map((b) => b.body).find((b) => b.includes("from 'y-websocket'"))
  assert.ok(snippet, 'the README has a y-websocket client in a ```js block')
  assert.match(snippet, /ws:\/\/localhost:8000\/ws\/doc/, 'it connects to the server the README starts')
  const text = /new Y\.XmlText\('([^']*)'\)/.exec(snippet)?.[1]
  assert.ok(text, 'it inserts a paragraph of text')
  // In this folder, so that `yjs`, `y-websocket` and `ws` resolve to this suite's packages.
  const file = path.join(path.dirname(new URL(import.meta.url).pathname), `.readme-edit-${process.pid}.mjs`)
  fs.writeFileSync(file, snippet.replaceAll('localhost:8000', `127.0.0.1:${server.port}`))
  try {
    const child = spawn(process.execPath, [file, docId], { env: { ...process.env, TOKEN: admin.token }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (c) => { output += c })
    child.stderr.on('data', (c) => { output += c })
    const [code] = await waitForEvent(child, 'exit', { timeout: 30_000, what: 'the client to finish' })
    assert.equal(code, 0, `the client failed:\n${output}`)
    await pollUntil(async () => (await gql('query ($d: ID!) { document(id: $d, draft: true) { body { text } } }', { d: docId }))
      .document.body.text.includes(text), { what: `"${text}" in the document's body` })
  } finally {
    fs.rmSync(file, { force: true })
  }
})
