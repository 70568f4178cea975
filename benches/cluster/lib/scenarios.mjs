// The two scenarios, run the same way on every target.

import { BenchClient, connectAll, sendTimes } from './client.mjs'
import { deadChildren } from './targets.mjs'
import { cpuMeter, delay, summarize } from './util.mjs'

function checkAlive (target) {
  const dead = deadChildren(target)
  if (dead.length) {
    throw new Error(`${dead.map((c) => `${c.name} exited (${JSON.stringify(c.exit)})`).join('; ')}:\n${dead.map((c) => c.tail()).join('\n')}`)
  }
}

async function waitUntil (pred, timeout) {
  const deadline = performance.now() + timeout
  while (!pred()) {
    if (performance.now() > deadline) return false
    await delay(10)
  }
  return true
}

const sub = (a, b) => (a === null || b === null ? null : round3(a - b))
const round3 = (x) => (x === null || x === undefined ? null : Math.round(x * 1000) / 1000)

/**
 * 1. Cross-node edit latency: one document; a writer on node A types one character every
 * `intervalMs`; one reader on node A, one on node B (the same node on a one-node target).
 * Latency: from just before the writer's local insert to the reader's transaction that
 * applies it.
 */
export async function latencyScenario (target, { inserts, warmup, intervalMs }) {
  const docName = await target.newDoc('latency')
  const a = 0
  const b = target.nodes.length > 1 ? 1 : 0
  const [writer, same, cross] = await connectAll([
    [target, a, docName, 'writer'],
    [target, a, docName, 'same-node reader'],
    [target, b, docName, 'cross-node reader']
  ])
  const clients = [writer, same, cross]
  try {
    await delay(300) // the three awareness states spread before anything is measured
    const total = warmup + inserts
    const lat = { same: new Float64Array(inserts).fill(NaN), cross: new Float64Array(inserts).fill(NaN) }
    const offs = [['same', same], ['cross', cross]].map(([k, reader]) => reader.onReceive((client, from, to, now) => {
      if (client !== writer.id) return
      const t = sendTimes.get(client)
      for (let c = Math.max(from, warmup); c < Math.min(to, total); c++) lat[k][c - warmup] = now - t[c]
    }))
    target.refreshProcs?.()
    const meter = cpuMeter(target.procs)
    const t0 = performance.now()
    for (let i = 0; i < total; i++) {
      const wait = t0 + i * intervalMs - performance.now()
      if (wait > 0) await delay(wait)
      writer.type()
    }
    const done = await waitUntil(() => same.stateOf(writer) >= total && cross.stateOf(writer) >= total, 10_000)
    const cpu = meter.stop()
    offs.forEach((off) => off())
    checkAlive(target)
    const valid = (arr) => Array.from(arr).filter((x) => !Number.isNaN(x))
    const diffs = []
    for (let i = 0; i < inserts; i++) {
      if (!Number.isNaN(lat.same[i]) && !Number.isNaN(lat.cross[i])) diffs.push(lat.cross[i] - lat.same[i])
    }
    const sameNode = summarize(valid(lat.same))
    const crossNode = summarize(valid(lat.cross))
    const result = {
      nodes: { writer: writer.node.name, sameReader: same.node.name, crossReader: cross.node.name },
      inserts,
      warmup,
      intervalMs,
      sameNode,
      crossNode,
      addedP50: sub(crossNode.p50, sameNode.p50),
      addedP99: sub(crossNode.p99, sameNode.p99),
      perEditAdded: summarize(diffs),
      missing: { same: inserts - sameNode.n, cross: inserts - crossNode.n },
      reconnects: clients.reduce((s, c) => s + c.closes, 0),
      cpu
    }
    if (!done) {
      result.error = `not delivered within 10 s of the last insert: same-node reader has ${same.stateOf(writer)}/${total}, ` +
        `cross-node reader ${cross.stateOf(writer)}/${total} of the writer's updates`
    }
    return result
  } finally {
    for (const c of clients) c.destroy()
  }
}

/**
 * 2. Throughput: `docs` documents, each with `writers` writers and `readers` readers, the
 * clients spread round-robin over the target's nodes. Each writer types as fast as it can
 * while at most `window` of its updates have not yet reached every reader of its
 * document (the readers are in this process: flow control by delivery, the same for both
 * protocols). Measured at the readers over `durationMs` after `warmupMs`.
 */
export async function throughputScenario (target, { docs, writers, readers, window, warmupMs, durationMs }) {
  const n = target.nodes.length
  const specs = []
  const layout = []
  let k = 0
  for (let d = 0; d < docs; d++) {
    const name = await target.newDoc(`throughput-${d}`)
    const g = { writers: [], readers: [] }
    for (let j = 0; j < writers; j++) { g.writers.push(specs.length); specs.push([target, k++ % n, name, `d${d}-writer${j}`]) }
    for (let j = 0; j < readers; j++) { g.readers.push(specs.length); specs.push([target, k++ % n, name, `d${d}-reader${j}`]) }
    layout.push(g)
  }
  const clients = await connectAll(specs)
  const timers = []
  const offs = []
  try {
    const groups = layout.map((g) => ({ writers: g.writers.map((i) => clients[i]), readers: g.readers.map((i) => clients[i]), scheduled: false }))
    await delay(500) // awareness states spread
    let phase = 'warmup'
    let running = true
    let delivered = 0
    let typed = 0
    const lat = []
    const inflight = (w, g) => {
      let min = Infinity
      for (const r of g.readers) min = Math.min(min, r.stateOf(w))
      return w.stateOf(w) - min
    }
    const pump = (g) => {
      for (const w of g.writers) {
        while (running && inflight(w, g) < window) {
          w.type()
          if (phase === 'measure') typed++
        }
      }
    }
    const schedule = (g) => {
      if (g.scheduled || !running) return
      g.scheduled = true
      setImmediate(() => { g.scheduled = false; pump(g) })
    }
    for (const g of groups) {
      const writerIds = new Set(g.writers.map((w) => w.id))
      for (const r of g.readers) {
        offs.push(r.onReceive((client, from, to, now) => {
          if (!writerIds.has(client)) return
          if (phase === 'measure') {
            delivered += to - from
            const t = sendTimes.get(client)
            for (let c = from; c < to; c++) lat.push(now - t[c])
          }
          schedule(g)
        }))
      }
    }
    // a writer whose window never opens (nothing delivered) would stall: re-check now and then
    timers.push(setInterval(() => groups.forEach(schedule), 20))
    target.refreshProcs?.() // (synchronous: before the clock starts)
    groups.forEach(pump)
    await delay(warmupMs)
    phase = 'measure'
    const meter = cpuMeter(target.procs)
    const t0 = performance.now()
    await delay(durationMs)
    phase = 'drain'
    const seconds = (performance.now() - t0) / 1000
    const cpu = meter.stop()
    running = false
    const converged = await waitUntil(() => groups.every((g) => g.writers.every((w) => inflight(w, g) === 0)), 10_000)
    checkAlive(target)
    const undelivered = groups.reduce((s, g) => s + g.writers.reduce((t, w) => t + inflight(w, g), 0), 0)
    const perNode = {}
    clients.forEach((c) => { perNode[c.node.name] = (perNode[c.node.name] ?? 0) + 1 })
    const result = {
      docs,
      clients: clients.length,
      writersPerDoc: writers,
      readersPerDoc: readers,
      window,
      seconds: round3(seconds),
      deliveredPerSec: Math.round(delivered / seconds),
      typedPerSec: Math.round(typed / seconds),
      latency: summarize(lat),
      clientsPerNode: perNode,
      reconnects: clients.reduce((s, c) => s + c.closes, 0),
      cpu
    }
    if (!converged) result.error = `${undelivered} updates still not at every reader 10 s after the writers stopped`
    return result
  } finally {
    timers.forEach(clearInterval)
    offs.forEach((off) => off())
    for (const c of clients) c.destroy()
  }
}

export { BenchClient }
