// The machine and versions, the median over rounds, and the Markdown fragment.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { benchDir, repoRoot } from './targets.mjs'
import { median, tryRun } from './util.mjs'

export function machineInfo () {
  const cpus = os.cpus()
  return {
    nproc: Number(tryRun('nproc', [])) || os.availableParallelism?.() || cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100)
  }
}

function pkgVersion (name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(benchDir, 'node_modules', name, 'package.json'), 'utf8')).version
  } catch {
    return null
  }
}

export function versions (vellum) {
  const v = {}
  for (const p of ['yjs', 'y-websocket', 'ws', 'y-protocols', '@hocuspocus/server', '@hocuspocus/extension-redis', '@hocuspocus/provider', 'ioredis']) v[p] = pkgVersion(p)
  v.redis = tryRun('redis-server', ['--version'])?.match(/v=(\S+)/)?.[1] ?? null
  v.postgres = tryRun('psql', ['-h', process.env.VELLUM_BENCH_PG_HOST || '127.0.0.1', '-p', process.env.VELLUM_BENCH_PG_PORT || '5432',
    '-U', process.env.VELLUM_BENCH_PG_USER || 'postgres', '-AtXc', 'show server_version', 'postgres'])
  if (vellum) {
    const rev = tryRun('git', ['-C', repoRoot, 'log', '-1', '--format=%h (%cs)'])
    const dirty = tryRun('git', ['-C', repoRoot, 'status', '--porcelain', '--untracked-files=no'])
    let built = null
    try { built = fs.statSync(vellum.bin).mtime.toISOString() } catch {}
    v.vellum = {
      commit: rev ? `${rev}${dirty ? ' + uncommitted changes' : ''}` : null,
      binary: vellum.bin,
      profile: vellum.profile,
      built
    }
  }
  return v
}

// ---------------------------------------------------------------------------------------
// medians over rounds

function mapLeaves (objs, f) {
  const present = objs.filter((o) => o !== undefined && o !== null)
  if (present.length === 0) return null
  if (present.every((o) => typeof o === 'number')) return f(present)
  if (present.every((o) => typeof o === 'object' && !Array.isArray(o))) {
    const out = {}
    for (const k of new Set(present.flatMap((o) => Object.keys(o)))) out[k] = mapLeaves(present.map((o) => o[k]), f)
    return out
  }
  return present[present.length - 1]
}

/** { median, min, max } trees of the rounds' results (numeric leaves; others: the last). */
export function aggregate (rounds) {
  return {
    median: mapLeaves(rounds, (xs) => median(xs)),
    min: mapLeaves(rounds, (xs) => Math.min(...xs)),
    max: mapLeaves(rounds, (xs) => Math.max(...xs))
  }
}

// ---------------------------------------------------------------------------------------
// formatting

function get (obj, p) { return p.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj) }

export function fmtMs (x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—'
  const a = Math.abs(x)
  const s = a < 10 ? x.toFixed(2) : a < 100 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US')
  return `${s} ms`
}
const fmtRate = (x) => (x === null || x === undefined ? '—' : `${Math.round(x).toLocaleString('en-US')} /s`)
const fmtCores = (x) => (x === null || x === undefined ? '—' : x.toFixed(2))
const fmtInt = (x) => (x === null || x === undefined ? '—' : String(Math.round(x)))

function cell (agg, p, fmt, rounds) {
  if (!agg) return '—'
  const m = get(agg.median, p)
  if (m === undefined || m === null) return '—'
  let s = fmt(m)
  if (rounds > 1) {
    const lo = get(agg.min, p)
    const hi = get(agg.max, p)
    if (lo !== hi) s += ` (${fmt(lo).replace(/ (ms|\/s)$/, '')}–${fmt(hi)})`
  }
  return s
}

function table (rows, targets, aggs, rounds) {
  const head = `| metric | ${targets.join(' | ')} |`
  const sep = `| --- | ${targets.map(() => '---').join(' | ')} |`
  const body = rows.map(([label, p, fmt]) => `| ${label} | ${targets.map((t) => cell(aggs[t], p, fmt, rounds)).join(' | ')} |`)
  return [head, sep, ...body].join('\n')
}

const TARGET_TEXT = {
  vellum1: 'vellum1: one Vellum node, PostgreSQL, no Redis',
  vellum3: 'vellum3: three Vellum nodes on one PostgreSQL database, joined by Redis (clients connect straight to the nodes, no load balancer)',
  hocus1: 'hocus1: one Hocuspocus instance, no Redis',
  hocus2: 'hocus2: two Hocuspocus instances with @hocuspocus/extension-redis on one Redis (no persistence extension: documents in memory only)'
}

/** The Markdown fragment for BENCHMARKS.md. */
export function markdown (res) {
  const { targets, params, rounds } = res
  const aggs = {}
  for (const t of targets) aggs[t] = res.results[t]?.summary ?? null
  const m = res.machine
  const v = res.versions
  const lines = []
  lines.push('## Many nodes: Vellum over its Redis bus against Hocuspocus with its Redis extension (`benches/cluster`)')
  lines.push('')
  lines.push(`Generated by \`${res.command}\` on ${res.date.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')} in ${Math.round(res.seconds)} s` +
    `${rounds > 1 ? ` (${rounds} rounds: medians, range in brackets)` : ' (one round)'}.`)
  lines.push('')
  lines.push(`- Machine: ${m.nproc} cores (${m.cpuModel}), ${m.memGiB} GiB, ${m.kernel}; load average at start → end: ${m.loadavg.join(' ')} → ${res.machineEnd.loadavg.join(' ')}. ` +
    'Everything runs on these cores at once: the client process (all clients, one Node.js thread), every server node, Redis and PostgreSQL. ' +
    'So a "3 nodes" figure shows the cost of the bus on a machine that cannot run three nodes in parallel, not how far three machines scale.')
  const vel = v.vellum ? `Vellum \`${v.vellum.commit}\`, ${v.vellum.profile} build (\`${v.vellum.binary}\`, built ${v.vellum.built}); ` : ''
  lines.push(`- Versions: ${vel}Node.js ${m.node}; yjs ${v.yjs}, y-websocket ${v['y-websocket']}, ws ${v.ws}; @hocuspocus/server ${v['@hocuspocus/server']}, ` +
    `@hocuspocus/extension-redis ${v['@hocuspocus/extension-redis']}, @hocuspocus/provider ${v['@hocuspocus/provider']}; Redis ${v.redis}; PostgreSQL ${v.postgres}.`)
  lines.push(`- Targets: ${targets.map((t) => TARGET_TEXT[t] ?? t).join('; ')}. Vellum runs with its defaults (\`collab.durability = "strict"\`: every update is committed to PostgreSQL before it is broadcast or published); Hocuspocus with its defaults and no database.`)
  lines.push('- Clients: the stock providers (y-websocket `WebsocketProvider` for Vellum, `HocuspocusProvider` for Hocuspocus) over `ws`, in one Node.js process. ' +
    'Every keystroke is one transaction and is followed by an awareness update of the `cursor` field (as TipTap\'s collaboration cursor does); ' +
    'y-websocket\'s provider re-sends every awareness update it receives, Hocuspocus\'s does not: each server gets the traffic its own client makes.')
  const errs = targets.flatMap((t) => (res.results[t]?.errors ?? []).map((e) => `${t}: ${e.split('\n')[0]}`))
  if (errs.length) lines.push(`- Failures: ${errs.join('; ')}`)
  lines.push('')
  const L = params.latency
  lines.push(`### Cross-node edit latency: one writer types one character every ${L.intervalMs} ms (${L.inserts} measured after ${L.warmup} warm-up); a reader on the writer's node and one on another node`)
  lines.push('')
  lines.push('On a one-node target both readers are on the one node, so its "added" rows show the noise floor.')
  lines.push('')
  lines.push(table([
    ['same-node p50', 'latency.sameNode.p50', fmtMs],
    ['same-node p95', 'latency.sameNode.p95', fmtMs],
    ['same-node p99', 'latency.sameNode.p99', fmtMs],
    ['cross-node p50', 'latency.crossNode.p50', fmtMs],
    ['cross-node p95', 'latency.crossNode.p95', fmtMs],
    ['cross-node p99', 'latency.crossNode.p99', fmtMs],
    ['cross-node max', 'latency.crossNode.max', fmtMs],
    ['**added p99: cross-node p99 − same-node p99** (goal for Vellum ≤ 2 ms)', 'latency.addedP99', fmtMs],
    ['added p50', 'latency.addedP50', fmtMs],
    ['per edit, cross − same: p50', 'latency.perEditAdded.p50', fmtMs],
    ['per edit, cross − same: p99', 'latency.perEditAdded.p99', fmtMs],
    ['edits not delivered (same / cross)', 'latency.missing.same', fmtInt],
    ['server CPU (cores, all nodes)', 'latency.cpu.server', fmtCores],
    ['PostgreSQL CPU (cores, its backends for the database)', 'latency.cpu.postgres', fmtCores],
    ['Redis CPU (cores)', 'latency.cpu.redis', fmtCores],
    ['client CPU (cores)', 'latency.cpu.client', fmtCores],
    ['whole machine busy (cores; other work included)', 'latency.cpu.machine', fmtCores]
  ], targets, aggs, rounds).replace(/\| edits not delivered \(same \/ cross\) \|.*\|/, () =>
    `| edits not delivered (same / cross) | ${targets.map((t) => aggs[t] ? `${fmtInt(get(aggs[t].median, 'latency.missing.same'))} / ${fmtInt(get(aggs[t].median, 'latency.missing.cross'))}` : '—').join(' | ')} |`))
  lines.push('')
  const T = params.throughput
  lines.push(`### Throughput: ${T.docs} documents × (${T.writers} writers + ${T.readers} readers), clients round-robin over the nodes; each writer keeps ≤ ${T.window} updates not yet at its readers; ${T.durationMs / 1000} s measured after ${T.warmupMs / 1000} s warm-up`)
  lines.push('')
  lines.push(table([
    ['delivered updates/s (at the readers)', 'throughput.deliveredPerSec', fmtRate],
    ['typed updates/s (writers)', 'throughput.typedPerSec', fmtRate],
    ['reader latency p50', 'throughput.latency.p50', fmtMs],
    ['reader latency p95', 'throughput.latency.p95', fmtMs],
    ['reader latency p99', 'throughput.latency.p99', fmtMs],
    ['server CPU (cores, all nodes)', 'throughput.cpu.server', fmtCores],
    ['PostgreSQL CPU (cores, its backends for the database)', 'throughput.cpu.postgres', fmtCores],
    ['Redis CPU (cores)', 'throughput.cpu.redis', fmtCores],
    ['client CPU (cores)', 'throughput.cpu.client', fmtCores],
    ['whole machine busy (cores; other work included)', 'throughput.cpu.machine', fmtCores],
    ['reconnects', 'throughput.reconnects', fmtInt]
  ], targets, aggs, rounds))
  lines.push('')
  const ratios = res.comparisons
  const r = []
  const fx = (x) => (x === null || x === undefined ? '—' : `${x.toFixed(2)}×`)
  if ('vellum3OverVellum1' in ratios) r.push(`vellum3 ÷ vellum1 delivered updates/s: **${fx(ratios.vellum3OverVellum1)}**`)
  if ('hocus2OverHocus1' in ratios) r.push(`hocus2 ÷ hocus1: ${fx(ratios.hocus2OverHocus1)}`)
  if ('vellum3OverHocus2' in ratios) r.push(`vellum3 ÷ hocus2: ${fx(ratios.vellum3OverHocus2)}`)
  if ('vellum1OverHocus2' in ratios) r.push(`vellum1 ÷ hocus2: ${fx(ratios.vellum1OverHocus2)}`)
  if (r.length) {
    lines.push(`${r.join('; ')}. With ${m.nproc} cores shared by clients, nodes, Redis and PostgreSQL, more nodes cannot add cores: the ratio shows what the bus costs, not how it would scale on separate machines.`)
    lines.push('')
  }
  return lines.join('\n')
}

export function comparisons (res) {
  const d = (t) => res.results[t]?.summary?.median?.throughput?.deliveredPerSec ?? null
  const ratio = (a, b) => (d(a) && d(b) ? Math.round((d(a) / d(b)) * 1000) / 1000 : null)
  const out = {}
  const has = (t) => res.targets.includes(t)
  if (has('vellum3') && has('vellum1')) out.vellum3OverVellum1 = ratio('vellum3', 'vellum1')
  if (has('hocus2') && has('hocus1')) out.hocus2OverHocus1 = ratio('hocus2', 'hocus1')
  if (has('vellum3') && has('hocus2')) out.vellum3OverHocus2 = ratio('vellum3', 'hocus2')
  if (has('vellum1') && has('hocus2')) out.vellum1OverHocus2 = ratio('vellum1', 'hocus2')
  return out
}
