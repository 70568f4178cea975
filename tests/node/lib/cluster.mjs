// A Vellum cluster for a test file: scripts/cluster (PostgreSQL database of its own, Redis,
// N nodes, nginx in front, all on loopback) started before the file's tests and stopped
// after them, plus what the cluster tests share: per-node metrics and readiness, GraphQL
// over HTTP, and typists that type unique tokens.

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { JWT_SECRET, isReference, repoRoot } from './server.mjs'
import { destroyAllClients } from './client.mjs'
import { TimeoutError, delay } from './wait.mjs'

const SCRIPT = path.join(repoRoot, 'scripts', 'cluster')
const KEEP = process.env.VELLUM_NODE_TEST_KEEP === '1'

function hasTool (name) {
  // root's PATH has /usr/sbin, other users' often not; scripts/cluster looks there too
  const r = spawnSync('sh', ['-c', `command -v ${name} || test -x /usr/sbin/${name} || test -x /usr/bin/${name}`])
  return r.status === 0
}

/** Why the cluster tests cannot run here, or null. */
export function clusterUnavailable () {
  if (isReference) return 'the reference server has no cluster mode'
  if (!hasTool('nginx')) return 'nginx is not installed (apt-get install nginx)'
  if (!hasTool('redis-server')) return 'redis-server is not installed (apt-get install redis-server)'
  return null
}

/** Something the test helpers can talk to like a TestServer: a node or nginx. */
export class Endpoint {
  constructor (name, port) {
    this.name = name
    this.port = port
  }

  get httpUrl () { return `http://127.0.0.1:${this.port}` }
  get wsBase () { return `ws://127.0.0.1:${this.port}/ws/doc` }
  docUrl (docId) { return `${this.wsBase}/${encodeURIComponent(docId)}` }
}

export class Cluster {
  /**
   * @param {string} name
   * @param {{ nodes?: number, env?: Record<string, string> }} [opts] `env`: extra
   *   environment for the nodes (VELLUM_* settings; scripts/cluster passes them on)
   */
  constructor (name, { nodes = 3, env = {} } = {}) {
    this.name = name
    this.size = nodes
    this.env = env
    this.skip = clusterUnavailable() || false
    this.dir = null
    this.info = null
    /** @type {Endpoint} */
    this.nginx = null
    /** @type {Endpoint[]} */
    this.nodes = []
    const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '_')
    this.db = `vellum_cluster_${slug}_${process.pid}_${Date.now().toString(36)}`.slice(0, 63)
  }

  /** Node `i`, 1-based as in scripts/cluster. */
  node (i) {
    const n = this.nodes[i - 1]
    if (!n) throw new Error(`no node ${i}: the cluster has ${this.nodes.length}`)
    return n
  }

  async run (...args) {
    const env = { ...process.env, JWT_SECRET, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1', ...this.env }
    return await new Promise((resolve, reject) => {
      execFile('bash', [SCRIPT, ...args, '--dir', this.dir], { env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`scripts/cluster ${args.join(' ')} failed (${err.code ?? err.signal}):\n${stderr}${stdout}`))
        else resolve({ stdout, stderr })
      })
    })
  }

  async start () {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `vellum-cluster-${this.name}-`))
    const started = Date.now()
    await this.run('start', '--nodes', String(this.size), '--port', '0', '--redis-port', '0', '--db', this.db, '--dev')
    this.readInfo()
    const extra = Object.entries(this.env).map(([k, v]) => `${k}=${v}`).join(' ')
    console.log(`${this.name}: cluster of ${this.size} up in ${Date.now() - started} ms: nginx ${this.nginx.port}, nodes ` +
      `${this.nodes.map((n) => n.port).join(' ')}, database ${this.db}${extra ? `, ${extra}` : ''} (state in ${this.dir})`)
  }

  readInfo () {
    this.info = JSON.parse(fs.readFileSync(path.join(this.dir, 'cluster.json'), 'utf8'))
    this.nginx = new Endpoint('nginx', this.info.nginx.port)
    this.nodes = this.info.nodes.map((n) => new Endpoint(n.id, n.port))
  }

  async stop () {
    if (!this.dir) return
    await this.run('stop', ...(KEEP ? [] : ['--drop-db'])).catch((err) => console.error(String(err)))
    if (KEEP) console.error(`${this.name}: keeping ${this.dir} and database ${this.db}`)
    else fs.rmSync(this.dir, { recursive: true, force: true })
    this.dir = null
  }

  /** SIGTERM node i and wait until it has exited (SIGKILL after 15 s). */
  stopNode (i) { return this.run('stop-node', String(i)) }
  /** SIGKILL node i. */
  killNode (i) { return this.run('kill-node', String(i)) }
  /** Start node i again (same port, data directory and settings) and wait until it is ready. */
  async startNode (i) {
    await this.run('start-node', String(i))
    this.readInfo()
  }

  stopRedis () { return this.run('stop-redis') }
  startRedis () { return this.run('start-redis') }

  pid (i) {
    try {
      return Number(fs.readFileSync(path.join(this.dir, `node-${i}`, 'node.pid'), 'utf8').trim())
    } catch {
      return null
    }
  }

  /** Whether node i's process is running (a zombie is not). */
  alive (i) {
    const pid = this.pid(i)
    if (!pid) return false
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
    } catch {
      return false
    }
  }

  /** The end of node i's log (or nginx's error log for 'nginx'). */
  tail (i, lines = 40) {
    const file = i === 'nginx'
      ? path.join(this.dir, 'nginx', 'logs', 'error.log')
      : path.join(this.dir, `node-${i}`, 'node.log')
    try {
      return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
    } catch (err) {
      return `(no log: ${err.message})`
    }
  }

  /** Every node's log tail and nginx's, for a failure message. */
  tails (lines = 25) {
    if (!this.dir) return ''
    const parts = this.nodes.map((n, k) => `--- ${n.name} (port ${n.port}), last ${lines} lines:\n${this.tail(k + 1, lines)}`)
    parts.push(`--- nginx error log:\n${this.tail('nginx', 10)}`)
    return parts.join('\n')
  }

  /** Node i's /metrics, parsed. */
  async metrics (i) {
    const res = await fetch(`${this.node(i).httpUrl}/metrics`)
    const text = await res.text()
    assert.equal(res.status, 200, `GET /metrics on node ${i}: ${res.status} ${text.slice(0, 200)}`)
    return parseMetrics(text)
  }

  /** `name` summed over every sample matching `labels`, on every node (or those given). */
  async sum (name, labels = {}, nodes = this.nodes.map((_, k) => k + 1)) {
    const per = await Promise.all(nodes.map(async (i) => sumSamples(await this.metrics(i), name, labels)))
    return per.reduce((a, b) => a + b, 0)
  }

  /** `name` on each node: [value on node 1, value on node 2, ...]. */
  async perNode (name, labels = {}) {
    return await Promise.all(this.nodes.map(async (_, k) => sumSamples(await this.metrics(k + 1), name, labels)))
  }

  /** GET /readyz on node i: { status: HTTP status, body: parsed JSON or text }. */
  async readyz (i) {
    const res = await fetch(`${this.node(i).httpUrl}/readyz`)
    const text = await res.text()
    let body = text
    try { body = JSON.parse(text) } catch {}
    return { status: res.status, body }
  }

  /** One SQL statement against the cluster's database, with psql; rows of |-separated fields. */
  async sql (statement) {
    return await new Promise((resolve, reject) => {
      execFile('psql', [this.info.database.url, '-v', 'ON_ERROR_STOP=1', '-AtXc', statement], (err, stdout, stderr) => {
        if (err) reject(new Error(`psql: ${stderr || err.message}`))
        else resolve(stdout.trim().split('\n').filter(Boolean).map((line) => line.split('|')))
      })
    })
  }

  /**
   * node:test's `test`, skipped when the cluster cannot run here, and printing the nodes'
   * log tails when it fails.
   */
  test (name, options, fn) {
    return test(name, { ...options, skip: this.skip || options.skip }, async (t) => {
      try {
        await fn(t)
        const panics = this.panics()
        assert.deepEqual(panics, [], `a node panicked during the test:\n${panics.join('\n')}`)
      } catch (err) {
        console.error(`${name} failed; the cluster's logs:\n${this.tails()}`)
        throw err
      }
    })
  }

  /** Lines of the nodes' logs that report a panic. */
  panics () {
    const found = []
    for (let i = 1; i <= this.nodes.length; i++) {
      let log = ''
      try { log = fs.readFileSync(path.join(this.dir, `node-${i}`, 'node.log'), 'utf8') } catch {}
      for (const line of log.split('\n')) if (/panicked at/.test(line)) found.push(`node-${i}: ${line}`)
    }
    return found
  }
}

/**
 * A cluster for this file: started before its tests, stopped (and its database dropped)
 * after them, with every client still alive destroyed first.
 */
export function useCluster (name, opts = {}) {
  const cluster = new Cluster(name, opts)
  if (cluster.skip) console.log(`${name}: cluster tests skipped: ${cluster.skip}`)
  before(async () => {
    if (!cluster.skip) await cluster.start()
  }, { timeout: 180_000 })
  after(async () => {
    destroyAllClients()
    await cluster.stop()
    // a test that failed halfway may leave a timer or socket behind; don't let it hang the run
    setTimeout(() => {
      process.stderr.write(`${name}: handles still open 10 s after the last test; exiting\n`)
      process.exit()
    }, 10_000).unref()
  }, { timeout: 120_000 })
  return cluster
}

// ---------------------------------------------------------------------------------------------
// Prometheus text format

/** @returns {{ name: string, labels: Record<string, string>, value: number }[]} */
export function parseMetrics (text) {
  const samples = []
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line)
    if (!m) continue
    const labels = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2]
    samples.push({ name: m[1], labels, value: Number(m[3]) })
  }
  return samples
}

export function sumSamples (samples, name, labels = {}) {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0)
}

// ---------------------------------------------------------------------------------------------
// GraphQL and REST against one endpoint

export async function gql (endpoint, token, query, variables = {}) {
  const res = await fetch(`${endpoint.httpUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables })
  })
  const text = await res.text()
  let body
  try { body = JSON.parse(text) } catch { throw new Error(`${endpoint.name}: ${res.status} ${text.slice(0, 300)}`) }
  if (body.errors) throw new Error(`${endpoint.name}: ${query.slice(0, 60)}…: ${JSON.stringify(body.errors)}`)
  return body.data
}

/** Renames a document over REST (reading its lockVersion first). */
export async function rename (endpoint, token, docId, title) {
  const headers = { authorization: `Bearer ${token}` }
  const url = `${endpoint.httpUrl}/api/documents/${encodeURIComponent(docId)}`
  const doc = await (await fetch(url, { headers })).json()
  const res = await fetch(url, {
    method: 'PATCH',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ lockVersion: doc.lockVersion, title })
  })
  assert.equal(res.status, 200, `rename on ${endpoint.name}: ${res.status} ${await res.text()}`)
}

// ---------------------------------------------------------------------------------------------
// Typing unique tokens

export const TOKEN = /\[[a-z][a-z0-9]*-\d{5}\]/g
export const token = (label, n) => `[${label}-${String(n).padStart(5, '0')}]`

/** Insert `text` at a random token boundary of `ytext` (never inside a token). */
export function insertAtBoundary (ytext, rng, text) {
  const s = ytext.toString()
  let at = rng.int(0, s.length)
  if (at < s.length && s[at] !== '[') {
    at = s.indexOf('[', at)
    if (at < 0) at = s.length
  }
  ytext.insert(at, text)
}

/** A client typing tokens `[label-00000]`, `[label-00001]`, … into its Y.Text 't'. */
export class Typist {
  /**
   * @param {import('./client.mjs').Client} client
   * @param {string} label lowercase letters and digits, unique in the test
   * @param {import('./prng.mjs').Prng} rng
   */
  constructor (client, label, rng) {
    assert.match(label, /^[a-z][a-z0-9]*$/)
    this.client = client
    this.label = label
    this.rng = rng
    /** every token this typist typed */
    this.typed = []
    this.stopping = false
    this.loop = null
  }

  /** Type one token now (works offline too: the provider sends it once connected). */
  typeOne () {
    const t = token(this.label, this.typed.length)
    insertAtBoundary(this.client.text, this.rng, t)
    this.typed.push(t)
    return t
  }

  /** Type a token every `intervalMs` on average (uniform in ±50 %) until `stop()`, or `count` tokens. */
  start ({ intervalMs = 50, count = Infinity } = {}) {
    this.stopping = false
    this.loop = (async () => {
      for (let n = 0; n < count && !this.stopping; n++) {
        this.typeOne()
        await delay(this.rng.int(Math.ceil(intervalMs / 2), Math.ceil(intervalMs * 3 / 2)))
      }
    })()
    return this
  }

  async stop () {
    this.stopping = true
    await this.loop
  }

  /** Resolves once `count` tokens are typed (with start({ count })). */
  done () { return this.loop }
}

/** Tokens missing from `text`, tokens in it more than once, and tokens nobody typed. */
export function tokenReport (text, typed) {
  const counts = new Map()
  for (const m of text.matchAll(TOKEN)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1)
  const expected = new Set(typed)
  return {
    missing: typed.filter((t) => !counts.has(t)),
    duplicated: [...counts].filter(([, n]) => n > 1).map(([t, n]) => `${t}x${n}`),
    unknown: [...counts.keys()].filter((t) => !expected.has(t)),
    found: counts.size
  }
}

/** Every token in `typed` is in `text` exactly once, and nothing else is. */
export function assertTokens (text, typed, what) {
  const r = tokenReport(text, typed)
  const sample = (list) => `${list.length}${list.length ? ` (e.g. ${list.slice(0, 8).join(' ')})` : ''}`
  assert.ok(typed.length > 0, `${what}: nothing was typed, the check proves nothing`)
  assert.ok(r.missing.length === 0 && r.duplicated.length === 0 && r.unknown.length === 0,
    `${what}: of ${typed.length} tokens typed, missing ${sample(r.missing)}, duplicated ${sample(r.duplicated)}, ` +
    `unknown ${sample(r.unknown)}`)
  assert.equal(text.replace(TOKEN, ''), '', `${what}: text outside the tokens (tokens were torn apart)`)
}

/**
 * Poll until `fn()` resolves truthy, for conditions that have no event (metrics, readiness,
 * GraphQL queries). Errors count as "not yet"; the last one is in the timeout's message, and
 * so is `describe()`.
 */
export async function eventually (fn, { timeout = 15_000, interval = 200, what = 'condition', describe } = {}) {
  const deadline = Date.now() + timeout
  for (;;) {
    let last = null
    try {
      const value = await fn()
      if (value) return value
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      let detail = last ? `; last error: ${last.message}` : ''
      if (describe) detail += `\n${await Promise.resolve().then(describe).catch((e) => `(describe failed: ${e})`)}`
      throw new TimeoutError(`timed out after ${timeout} ms waiting for ${what}${detail}`)
    }
    await delay(interval)
  }
}
