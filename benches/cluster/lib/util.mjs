// Small helpers: statistics, processes (spawned, logged, stopped), ports, CPU time.

import { spawn, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'

export const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------
// statistics

/** Nearest-rank percentile of an ascending array. */
export function percentile (sorted, p) {
  if (sorted.length === 0) return null
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]
}

const r3 = (x) => (x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 1000) / 1000)

/** { n, p50, p95, p99, max, mean } of latencies in ms. */
export function summarize (values) {
  const a = Float64Array.from(values).sort()
  if (a.length === 0) return { n: 0, p50: null, p95: null, p99: null, max: null, mean: null }
  let sum = 0
  for (const v of a) sum += v
  return {
    n: a.length,
    p50: r3(percentile(a, 50)),
    p95: r3(percentile(a, 95)),
    p99: r3(percentile(a, 99)),
    max: r3(a[a.length - 1]),
    mean: r3(sum / a.length)
  }
}

export function median (xs) {
  const a = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((x, y) => x - y)
  if (a.length === 0) return null
  const m = a.length >> 1
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2
}

// ---------------------------------------------------------------------------------------
// CPU time of processes (Linux /proc), in seconds

let clkTck = 100
try { clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100 } catch {}

/** user+system CPU seconds of `pid` so far, or null when it is gone. */
export function cpuSeconds (pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields[0] is the state (field 3); utime and stime are fields 14 and 15
    return (Number(fields[11]) + Number(fields[12])) / clkTck
  } catch {
    return null
  }
}

/** Busy and total CPU seconds of the whole machine (all cores), from /proc/stat. */
export function machineCpuSeconds () {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]
    const v = line.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const idle = v[3] + (v[4] || 0)
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0)
    return { busy: (total - idle) / clkTck, total: total / clkTck }
  } catch {
    return null
  }
}

export function selfCpuSeconds () {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/**
 * Measure CPU over an interval: `const m = cpuMeter(procs)`, later `m.stop(wallSeconds)`
 * gives cores used per named process group (and the client: this process).
 * @param {{ name: string, pid: number, group: string }[]} procs
 */
export function cpuMeter (procs) {
  const start = procs.map((p) => cpuSeconds(p.pid))
  const self0 = selfCpuSeconds()
  const machine0 = machineCpuSeconds()
  const t0 = performance.now()
  return {
    stop () {
      const wall = (performance.now() - t0) / 1000
      const groups = {}
      procs.forEach((p, i) => {
        const now = cpuSeconds(p.pid)
        if (now === null || start[i] === null) return
        groups[p.group] = (groups[p.group] ?? 0) + (now - start[i]) / wall
      })
      for (const k of Object.keys(groups)) groups[k] = r3(groups[k])
      const machine1 = machineCpuSeconds()
      const out = { client: r3((selfCpuSeconds() - self0) / wall), ...groups }
      // everything busy on the machine, this benchmark or not (other builds show up here)
      if (machine0 && machine1) out.machine = r3((machine1.busy - machine0.busy) / wall)
      return out
    }
  }
}

// ---------------------------------------------------------------------------------------
// ports and processes

/** A free TCP port on 127.0.0.1 (bound and released; someone else could take it meanwhile). */
export function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** every child process still alive, killed when this process exits however it exits */
const children = new Set()
process.on('exit', () => {
  for (const c of children) {
    try { c.proc.kill('SIGKILL') } catch {}
  }
})

export class Child {
  /**
   * Spawn `file args`; stdout and stderr go to `logFile` and the last lines are kept.
   * @param {string} name
   * @param {string} file
   * @param {string[]} args
   * @param {{ env?: NodeJS.ProcessEnv, logFile: string, cwd?: string }} opts
   */
  constructor (name, file, args, { env = process.env, logFile, cwd }) {
    this.name = name
    this.logFile = logFile
    this.lines = []
    this.waiters = []
    this.log = fs.createWriteStream(logFile, { flags: 'a' })
    this.log.write(`=== ${new Date().toISOString()} ${file} ${args.join(' ')}\n`)
    this.proc = spawn(file, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    this.pid = this.proc.pid
    this.exit = null
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exit = { code, signal }
        children.delete(this)
        for (const w of this.waiters.splice(0)) w.reject(new Error(`${name} exited (code=${code} signal=${signal}) before printing ${w.re}:\n${this.tail()}`))
        resolve(this.exit)
      })
    })
    this.proc.once('error', (err) => {
      for (const w of this.waiters.splice(0)) w.reject(err)
    })
    children.add(this)
    for (const stream of [this.proc.stdout, this.proc.stderr]) {
      let buf = ''
      stream.setEncoding('utf8')
      stream.on('data', (chunk) => {
        this.log.write(chunk)
        buf += chunk
        let nl
        while ((nl = buf.indexOf('\n')) >= 0) {
          this.onLine(buf.slice(0, nl))
          buf = buf.slice(nl + 1)
        }
      })
    }
  }

  get running () { return this.exit === null }

  onLine (line) {
    // strip ANSI colours, should a program print them anyway
    line = line.replace(/\x1b\[[0-9;]*m/g, '')
    this.lines.push(line)
    if (this.lines.length > 300) this.lines.splice(0, this.lines.length - 300)
    for (const w of [...this.waiters]) {
      const m = w.re.exec(line)
      if (m) {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        clearTimeout(w.timer)
        w.resolve(m)
      }
    }
  }

  /** Resolve with the match of the first line (from now on, or already seen) matching `re`. */
  waitForLine (re, timeout = 30_000) {
    for (const line of this.lines) {
      const m = re.exec(line)
      if (m) return Promise.resolve(m)
    }
    if (!this.running) return Promise.reject(new Error(`${this.name} is not running:\n${this.tail()}`))
    return new Promise((resolve, reject) => {
      const w = { re, resolve, reject }
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        reject(new Error(`${this.name} did not print ${re} within ${timeout} ms:\n${this.tail()}`))
      }, timeout)
      this.waiters.push(w)
    })
  }

  tail (n = 25) { return this.lines.slice(-n).map((l) => `    ${l}`).join('\n') }

  /** SIGTERM, then SIGKILL after `timeout` ms. */
  async stop (timeout = 10_000) {
    if (this.running) {
      this.proc.kill('SIGTERM')
      const timer = setTimeout(() => { try { this.proc.kill('SIGKILL') } catch {} }, timeout)
      await this.exited
      clearTimeout(timer)
    }
    await new Promise((resolve) => this.log.end(resolve))
  }
}

/** Poll `GET url` until it answers `status`. */
export async function waitForHttp (url, { status = 200, timeout = 60_000, child } = {}) {
  const deadline = Date.now() + timeout
  let last = 'no answer'
  while (Date.now() < deadline) {
    if (child && !child.running) throw new Error(`${child.name} exited (${JSON.stringify(child.exit)}) while waiting for ${url}:\n${child.tail()}`)
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) })
      const body = await res.text()
      if (res.status === status) return body
      last = `${res.status} ${body.slice(0, 200)}`
    } catch (e) {
      last = e.message
    }
    await delay(100)
  }
  throw new Error(`${url} did not answer ${status} within ${timeout} ms (last: ${last})${child ? `:\n${child.tail()}` : ''}`)
}

export function run (file, args, opts = {}) {
  return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts }).trim()
}

export function tryRun (file, args, opts) {
  try { return run(file, args, opts) } catch { return null }
}
