// The systems under test, each started fresh on loopback and stopped after its scenarios:
//
//   vellum1  one Vellum node on a fresh PostgreSQL database, no Redis
//   vellum3  three Vellum nodes on one fresh database, joined by a Redis they share
//            (REDIS_URL, VELLUM_COLLAB__NODE_ID=node-1..3); clients connect straight to
//            the nodes (no nginx)
//   hocus1   one Hocuspocus instance, no Redis (optional: not in the default set)
//   hocus2   two Hocuspocus instances with @hocuspocus/extension-redis on a shared Redis
//
// A started target is { name, kind, nodes: [{ name, port, httpUrl, wsBase }], procs, newDoc(),
// token, stop() }.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Child, delay, freePort, run, waitForHttp } from './util.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
export const benchDir = path.resolve(here, '..')
export const repoRoot = path.resolve(benchDir, '..', '..')

export const ALL_TARGETS = ['vellum1', 'vellum3', 'hocus2']
export const KNOWN_TARGETS = ['vellum1', 'vellum3', 'hocus1', 'hocus2']

export const JWT_SECRET = 'vellum-bench-cluster-jwt-secret-at-least-32-bytes'
const PG = process.env.VELLUM_BENCH_PG_HOST || '127.0.0.1'
const PG_USER = process.env.VELLUM_BENCH_PG_USER || 'postgres'
const PG_PORT = process.env.VELLUM_BENCH_PG_PORT || '5432'

/**
 * The Vellum binary: --vellum-bin, else ${CARGO_TARGET_DIR:-<repo>/target}/release/vellum,
 * else (with a warning) the debug build there, else the CI cache's builds.
 * @returns {{ bin: string, profile: string, warning: string | null }}
 */
export function resolveVellumBinary (explicit) {
  const profileOf = (p) => (/[/\\]release[/\\]/.test(p) ? 'release' : /[/\\]debug[/\\]/.test(p) ? 'debug' : 'unknown')
  if (explicit) {
    const bin = path.resolve(explicit)
    if (!fs.existsSync(bin)) throw new Error(`--vellum-bin ${bin} does not exist`)
    const profile = profileOf(bin)
    return { bin, profile, warning: profile === 'debug' ? `${bin} is a debug build: its numbers say little about Vellum's speed` : null }
  }
  const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR) : path.join(repoRoot, 'target')
  const release = path.join(targetDir, 'release', 'vellum')
  if (fs.existsSync(release)) return { bin: release, profile: 'release', warning: null }
  const fallbacks = [
    path.join(targetDir, 'debug', 'vellum'),
    '/var/cache/vellum-ci/target/release/vellum',
    '/var/cache/vellum-ci/target/debug/vellum'
  ]
  for (const bin of fallbacks) {
    if (fs.existsSync(bin)) {
      const profile = profileOf(bin)
      return {
        bin,
        profile,
        warning: `no release build at ${release}; using ${bin} (${profile})` +
          (profile === 'debug' ? ': a debug build, so its numbers say little about Vellum\'s speed (cargo build --release --bin vellum)' : '')
      }
    }
  }
  throw new Error(`no Vellum binary at ${release} nor at ${fallbacks.join(', ')} (cargo build --release --bin vellum, or --vellum-bin PATH)`)
}

function tmpDir (name) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `vellum-bench-cluster-${name}-`))
}

// ---------------------------------------------------------------------------------------
// Redis

async function startRedis (dir, children) {
  const port = await freePort()
  const redis = new Child('redis', 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir
  ], { logFile: path.join(dir, 'redis.log') })
  children.push(redis)
  await redis.waitForLine(/Ready to accept connections/, 10_000)
  redis.port = port
  return redis
}

// ---------------------------------------------------------------------------------------
// Vellum

function pgArgs () { return ['-h', PG, '-p', PG_PORT, '-U', PG_USER] }

async function startVellumNode ({ bin, index, dir, dbUrl, redisUrl, children }) {
  const dataDir = path.join(dir, `node-${index}`)
  fs.mkdirSync(dataDir, { recursive: true })
  const env = {
    ...process.env,
    DATABASE_URL: dbUrl,
    JWT_SECRET,
    NO_COLOR: '1',
    RUST_LOG: process.env.RUST_LOG || 'info',
    VELLUM_COLLAB__NODE_ID: `node-${index}`
  }
  for (const k of ['REDIS_URL', 'VELLUM_BUS__REDIS_URL', 'VELLUM_DATABASE__URL', 'VELLUM_AUTH__JWT_SECRET', 'VELLUM_CONFIG']) delete env[k]
  if (redisUrl) env.REDIS_URL = redisUrl
  const node = new Child(`vellum node-${index}`, bin, [
    'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, '--dev'
  ], { env, logFile: path.join(dir, `node-${index}.log`) })
  children.push(node)
  const m = await node.waitForLine(/listening.*?addr=127\.0\.0\.1:(\d+)/, 60_000)
  const port = Number(m[1])
  const endpoint = {
    name: `node-${index}`,
    port,
    httpUrl: `http://127.0.0.1:${port}`,
    wsBase: `ws://127.0.0.1:${port}/ws/doc`
  }
  // 200 is also "degraded" (Redis bus down): with a bus, wait for "ready"
  const deadline = Date.now() + 30_000
  for (;;) {
    const body = await waitForHttp(`${endpoint.httpUrl}/readyz`, { child: node, timeout: 60_000 })
    let status = null
    try { status = JSON.parse(body).status } catch {}
    if (!redisUrl || status === 'ready') break
    if (Date.now() > deadline) throw new Error(`node-${index} stays '${body}' on /readyz (its Redis bus does not connect):\n${node.tail()}`)
    await delay(100)
  }
  return { child: node, endpoint }
}

async function vellumRequest (endpoint, method, p, { token, body, expect }) {
  const headers = { accept: 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(`${endpoint.httpUrl}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  if (res.status !== expect) throw new Error(`${method} ${p} on ${endpoint.name} answered ${res.status}, expected ${expect}: ${text}`)
  return text ? JSON.parse(text) : null
}

async function startVellum (name, { nodes, bin }) {
  const dir = tmpDir(name)
  const db = `vellum_bench_${name}_${process.pid}_${Date.now().toString(36)}`
  const dbUrl = `postgres://${PG_USER}@${PG}:${PG_PORT}/${db}`
  const started = { children: [], db: null }
  const target = {
    name,
    kind: 'vellum',
    dir,
    nodes: [],
    procs: [],
    token: null,
    async stop ({ keep = false } = {}) {
      // nodes first (they flush to the database), then Redis, then the database
      await Promise.all(started.children.filter((c) => c.name.startsWith('vellum')).map((c) => c.stop(15_000)))
      await Promise.all(started.children.filter((c) => !c.name.startsWith('vellum')).map((c) => c.stop()))
      if (started.db) {
        try { run('dropdb', [...pgArgs(), '--if-exists', '--force', started.db]) } catch (e) { console.error(`warning: dropdb ${started.db}: ${e.message}`) }
      }
      if (!keep) fs.rmSync(dir, { recursive: true, force: true })
    }
  }
  try {
    run('createdb', [...pgArgs(), db])
    started.db = db
    let redisUrl = null
    if (nodes > 1) {
      const redis = await startRedis(dir, started.children)
      redisUrl = `redis://127.0.0.1:${redis.port}`
      target.procs.push({ name: 'redis', pid: redis.pid, group: 'redis' })
      target.redisPort = redis.port
    }
    // node 1 alone first: it runs the migrations on the fresh database
    const children = started.children
    const first = await startVellumNode({ bin, index: 1, dir, dbUrl, redisUrl, children })
    const rest = await Promise.all(Array.from({ length: nodes - 1 }, (_, i) =>
      startVellumNode({ bin, index: i + 2, dir, dbUrl, redisUrl, children })))
    for (const n of [first, ...rest]) {
      target.nodes.push(n.endpoint)
      target.procs.push({ name: n.endpoint.name, pid: n.child.pid, group: 'server' })
    }
    target.children = started.children
    const reg = await vellumRequest(target.nodes[0], 'POST', '/api/auth/register', {
      body: { email: `bench-${process.pid}-${Date.now().toString(36)}@example.com`, password: 'correct horse battery staple', displayName: 'bench' },
      expect: 201
    })
    target.token = reg.token
    let docs = 0
    target.newDoc = async (title = 'bench') => {
      // spread the REST calls too; any node can serve them (one database)
      const node = target.nodes[docs++ % target.nodes.length]
      const res = await vellumRequest(node, 'POST', '/api/documents', { token: target.token, body: { title }, expect: 201 })
      return res.id
    }
    // PostgreSQL's backends serving this database: their CPU is part of Vellum's cost
    target.refreshProcs = () => {
      target.procs = target.procs.filter((p) => p.group !== 'postgres')
      let pids = []
      try {
        pids = run('psql', [...pgArgs(), '-AtXc', `select pid from pg_stat_activity where datname = '${db}' and pid <> pg_backend_pid()`, 'postgres'])
          .split('\n').filter(Boolean).map(Number)
      } catch {}
      for (const pid of pids) target.procs.push({ name: `postgres ${pid}`, pid, group: 'postgres' })
    }
    target.describe = `${nodes} Vellum node${nodes > 1 ? 's' : ''} (ports ${target.nodes.map((n) => n.port).join(', ')}), database ${db}` +
      (redisUrl ? `, ${redisUrl}` : ', no Redis')
    return target
  } catch (e) {
    e.message = `${name}: start failed: ${e.message}\n  (logs in ${dir})`
    await target.stop({ keep: true }).catch(() => {})
    throw e
  }
}

// ---------------------------------------------------------------------------------------
// Hocuspocus

async function startHocuspocus (name, { instances }) {
  const dir = tmpDir(name)
  const children = []
  const target = {
    name,
    kind: 'hocuspocus',
    dir,
    nodes: [],
    procs: [],
    token: 'bench',
    async stop ({ keep = false } = {}) {
      await Promise.all(children.filter((c) => c.name !== 'redis').map((c) => c.stop(5000)))
      await Promise.all(children.filter((c) => c.name === 'redis').map((c) => c.stop()))
      if (!keep) fs.rmSync(dir, { recursive: true, force: true })
    }
  }
  try {
    let redis = null
    if (instances > 1) {
      redis = await startRedis(dir, children)
      target.procs.push({ name: 'redis', pid: redis.pid, group: 'redis' })
      target.redisPort = redis.port
    }
    const servers = await Promise.all(Array.from({ length: instances }, async (_, i) => {
      const args = [path.join(benchDir, 'hocuspocus-server.mjs'), '--port', '0', '--name', `hocuspocus-${i + 1}`]
      if (redis) args.push('--redis-port', String(redis.port))
      const child = new Child(`hocuspocus-${i + 1}`, process.execPath, args, { logFile: path.join(dir, `hocuspocus-${i + 1}.log`), cwd: benchDir })
      children.push(child)
      const m = await child.waitForLine(/listening port=(\d+)/, 30_000)
      return { child, port: Number(m[1]), i }
    }))
    for (const s of servers) {
      target.nodes.push({ name: `hocuspocus-${s.i + 1}`, port: s.port, httpUrl: `http://127.0.0.1:${s.port}`, wsBase: `ws://127.0.0.1:${s.port}` })
      target.procs.push({ name: `hocuspocus-${s.i + 1}`, pid: s.child.pid, group: 'server' })
    }
    target.children = children
    let docs = 0
    target.newDoc = async (title = 'bench') => `${title}-${process.pid}-${++docs}`
    target.describe = `${instances} Hocuspocus instance${instances > 1 ? 's' : ''} (ports ${target.nodes.map((n) => n.port).join(', ')})` +
      (redis ? `, Redis extension on redis://127.0.0.1:${redis.port}` : ', no Redis')
    return target
  } catch (e) {
    e.message = `${name}: start failed: ${e.message}\n  (logs in ${dir})`
    await target.stop({ keep: true }).catch(() => {})
    throw e
  }
}

export async function startTarget (name, { vellumBin }) {
  switch (name) {
    case 'vellum1': return startVellum(name, { nodes: 1, bin: vellumBin })
    case 'vellum3': return startVellum(name, { nodes: 3, bin: vellumBin })
    case 'hocus1': return startHocuspocus(name, { instances: 1 })
    case 'hocus2': return startHocuspocus(name, { instances: 2 })
    default: throw new Error(`unknown target '${name}' (known: ${KNOWN_TARGETS.join(', ')})`)
  }
}

/** Every still-running child of a target (to detect a crash during a scenario). */
export function deadChildren (target) {
  return (target.children || []).filter((c) => !c.running)
}
