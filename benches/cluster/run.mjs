#!/usr/bin/env node
// Many-node benchmark: Vellum (one node; three nodes over its Redis bus) against Hocuspocus
// (two instances with @hocuspocus/extension-redis), side by side in one run. See README.md.
//
//   node run.mjs [--quick] [--targets vellum1,vellum3,hocus2] [--rounds N]
//                [--out FILE.json] [--md FILE.md] [--vellum-bin PATH] [--keep]
//                [--inserts N] [--docs N] [--duration S] [--window W]

import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { ALL_TARGETS, KNOWN_TARGETS, resolveVellumBinary, startTarget } from './lib/targets.mjs'
import { latencyScenario, throughputScenario } from './lib/scenarios.mjs'
import { aggregate, comparisons, fmtMs, machineInfo, markdown, versions } from './lib/report.mjs'

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    md: { type: 'string' },
    targets: { type: 'string', default: ALL_TARGETS.join(',') },
    'vellum-bin': { type: 'string' },
    rounds: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
    inserts: { type: 'string' },
    docs: { type: 'string' },
    duration: { type: 'string' },
    window: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false }
  }
})

if (opts.help) {
  const text = fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n').slice(1, 8).map((l) => l.replace(/^\/\/ ?/, '')).join('\n')
  console.log(text)
  process.exit(0)
}

const targets = opts.targets.split(',').map((s) => s.trim()).filter(Boolean)
for (const t of targets) if (!KNOWN_TARGETS.includes(t)) { console.error(`unknown target '${t}' (known: ${KNOWN_TARGETS.join(', ')})`); process.exit(2) }
const rounds = Math.max(1, Number(opts.rounds) || 1)
const num = (v, d) => (v === undefined ? d : Number(v))
const params = {
  latency: { inserts: num(opts.inserts, opts.quick ? 150 : 600), warmup: opts.quick ? 10 : 25, intervalMs: 20 },
  throughput: {
    docs: num(opts.docs, opts.quick ? 6 : 30),
    writers: 2,
    readers: 2,
    window: num(opts.window, 16),
    warmupMs: 2000,
    durationMs: num(opts.duration, opts.quick ? 5 : 20) * 1000
  }
}

let vellum = null
if (targets.some((t) => t.startsWith('vellum'))) {
  try {
    vellum = resolveVellumBinary(opts['vellum-bin'])
  } catch (e) {
    console.error(`error: ${e.message}`)
    process.exit(2)
  }
  if (vellum.warning) console.error(`warning: ${vellum.warning}`)
}

const startedAt = new Date()
const t0 = performance.now()
const command = ['node', 'benches/cluster/run.mjs', ...process.argv.slice(2)].join(' ')
const res = {
  date: startedAt.toISOString(),
  command,
  machine: machineInfo(),
  versions: versions(vellum),
  targets,
  rounds,
  params,
  results: Object.fromEntries(targets.map((t) => [t, { describe: null, rounds: [], errors: [] }])),
  comparisons: {}
}
const log = (s) => console.log(s)
log(`cluster bench: targets ${targets.join(', ')}; ${rounds} round${rounds > 1 ? 's' : ''}${opts.quick ? ' (quick)' : ''}; ${res.machine.nproc} cores, Node ${res.machine.node}` +
  (vellum ? `; Vellum ${vellum.profile} ${vellum.bin}` : ''))

let current = null
let interrupted = false
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    if (interrupted) process.exit(130)
    interrupted = true
    console.error(`\n${sig}: stopping ${current ? current.name : 'nothing'}…`)
    try { await current?.stop({ keep: true }) } catch {}
    process.exit(130)
  })
}

for (let r = 0; r < rounds; r++) {
  // rotate the order each round, so no target always runs first (or last)
  const order = targets.map((_, i) => targets[(i + r) % targets.length])
  for (const name of order) {
    const entry = res.results[name]
    const round = {}
    let target = null
    const ts = performance.now()
    try {
      target = await startTarget(name, { vellumBin: vellum?.bin })
      current = target
      entry.describe = target.describe
      log(`[${name}] round ${r + 1}: ${target.describe} (up in ${Math.round(performance.now() - ts)} ms)`)
    } catch (e) {
      entry.errors.push(`round ${r + 1}: ${e.message}`)
      log(`[${name}] round ${r + 1}: FAILED to start: ${e.message}`)
      entry.rounds.push(round)
      continue
    }
    let failed = false
    try {
      const L = await latencyScenario(target, params.latency)
      round.latency = L
      log(`[${name}]   latency: same-node p50 ${fmtMs(L.sameNode.p50)} p99 ${fmtMs(L.sameNode.p99)}; cross-node p50 ${fmtMs(L.crossNode.p50)} p99 ${fmtMs(L.crossNode.p99)}; ` +
        `added p99 ${fmtMs(L.addedP99)}; missing ${L.missing.same}/${L.missing.cross}; cpu ${JSON.stringify(L.cpu)}`)
      if (L.error) { entry.errors.push(`round ${r + 1} latency: ${L.error}`); log(`[${name}]   latency: ${L.error}`); failed = true }
    } catch (e) {
      failed = true
      entry.errors.push(`round ${r + 1} latency: ${e.message}`)
      log(`[${name}]   latency FAILED: ${e.message}`)
    }
    try {
      const T = await throughputScenario(target, params.throughput)
      round.throughput = T
      log(`[${name}]   throughput: ${T.deliveredPerSec.toLocaleString('en-US')} delivered/s, ${T.typedPerSec.toLocaleString('en-US')} typed/s; ` +
        `latency p50 ${fmtMs(T.latency.p50)} p99 ${fmtMs(T.latency.p99)}; ${T.clients} clients ${JSON.stringify(T.clientsPerNode)}; reconnects ${T.reconnects}; cpu ${JSON.stringify(T.cpu)}`)
      if (T.error) { entry.errors.push(`round ${r + 1} throughput: ${T.error}`); log(`[${name}]   throughput: ${T.error}`); failed = true }
    } catch (e) {
      failed = true
      entry.errors.push(`round ${r + 1} throughput: ${e.message}`)
      log(`[${name}]   throughput FAILED: ${e.message}`)
    }
    entry.rounds.push(round)
    const keep = opts.keep || failed
    await target.stop({ keep })
    current = null
    if (keep) log(`[${name}]   logs kept in ${target.dir}`)
  }
}

for (const t of targets) res.results[t].summary = aggregate(res.results[t].rounds)
res.comparisons = comparisons(res)
res.machineEnd = { loadavg: machineInfo().loadavg }
res.seconds = Math.round((performance.now() - t0) / 100) / 10
const md = markdown(res)

log('')
log(md)
if (opts.out) {
  fs.mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true })
  fs.writeFileSync(opts.out, JSON.stringify(res, null, 2) + '\n')
  log(`wrote ${opts.out}`)
}
if (opts.md) {
  fs.mkdirSync(path.dirname(path.resolve(opts.md)), { recursive: true })
  fs.writeFileSync(opts.md, md + '\n')
  log(`wrote ${opts.md}`)
}
const errors = targets.flatMap((t) => res.results[t].errors)
if (errors.length) {
  console.error(`\n${errors.length} failure${errors.length > 1 ? 's' : ''}:\n${errors.map((e) => `  ${e}`).join('\n')}`)
}
// providers keep timers (awareness, reconnect checks) after destroy in some versions
process.exit(errors.length ? 1 : 0)
