// Start, stop, crash and restart the server under test.
//
// VELLUM_NODE_TEST_TARGET selects it:
//   vellum     (default) the Vellum binary: $VELLUM_BIN, else
//              ${CARGO_TARGET_DIR:-<repo>/target}/debug/vellum
//   reference  lib/reference-server.mjs: the stock y-websocket server (@y/websocket-server, a
//              devDependency) with a small emulation of Vellum's REST/auth/sharing and a
//              synchronous update log, used to validate this harness without Vellum.
//
// Both are started as `… serve --host 127.0.0.1 --port 0 --data-dir DIR` and print
// `listening addr=127.0.0.1:PORT` on stderr, which is where the port is read from.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
export const repoRoot = path.resolve(here, '..', '..', '..')

export const TARGET = process.env.VELLUM_NODE_TEST_TARGET || 'vellum'
if (TARGET !== 'vellum' && TARGET !== 'reference') {
  throw new Error(`VELLUM_NODE_TEST_TARGET must be 'vellum' or 'reference', not '${TARGET}'`)
}
export const isReference = TARGET === 'reference'

export const JWT_SECRET = 'test-secret-that-is-at-least-32-bytes-long'
const ECHO_LOGS = process.env.VELLUM_NODE_TEST_LOG === '1'
const KEEP_DATA = process.env.VELLUM_NODE_TEST_KEEP === '1'
const START_TIMEOUT = 30_000
const LOG_LINES_KEPT = 400

export function vellumBinary () {
  if (process.env.VELLUM_BIN) return path.resolve(process.env.VELLUM_BIN)
  const targetDir = process.env.CARGO_TARGET_DIR
    ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR)
    : path.join(repoRoot, 'target')
  return path.join(targetDir, 'debug', 'vellum')
}

function command (dataDir) {
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, '--dev']
  if (isReference) {
    return { file: process.execPath, args: [path.join(here, 'reference-server.mjs'), ...args] }
  }
  const bin = vellumBinary()
  if (!fs.existsSync(bin)) {
    throw new Error(`Vellum binary not found at ${bin}: run \`cargo build --bin vellum\`, set VELLUM_BIN, ` +
      'or run against the reference server with VELLUM_NODE_TEST_TARGET=reference')
  }
  return { file: bin, args }
}

let serverCount = 0

export class TestServer {
  /** @param {{ dataDir?: string, name?: string }} [opts] */
  constructor ({ dataDir, name } = {}) {
    this.name = name ?? `server${++serverCount}`
    this.ownsDataDir = !dataDir
    this.dataDir = dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'vellum-node-e2e-'))
    /** @type {import('node:child_process').ChildProcess | null} */
    this.proc = null
    this.port = 0
    this.generation = 0
    /** @type {string[]} last lines of stderr/stdout over all generations */
    this.logLines = []
    /** @type {Promise<{code: number|null, signal: string|null}> | null} */
    this.exited = null
    this.expectingExit = false
  }

  get httpUrl () { return `http://127.0.0.1:${this.port}` }
  /** Base URL for WebsocketProvider: the provider appends `/{documentId}?token=…`. */
  get wsBase () { return `ws://127.0.0.1:${this.port}/ws/doc` }
  docUrl (docId) { return `${this.wsBase}/${encodeURIComponent(docId)}` }
  get running () { return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null }

  log (line) {
    this.logLines.push(line)
    if (this.logLines.length > LOG_LINES_KEPT) this.logLines.splice(0, this.logLines.length - LOG_LINES_KEPT)
    if (ECHO_LOGS) process.stderr.write(`[${this.name}#${this.generation}] ${line}\n`)
  }

  /** The last `n` log lines, for failure messages. */
  tail (n = 40) { return this.logLines.slice(-n).join('\n') }

  async start () {
    if (this.running) throw new Error(`${this.name} is already running`)
    const { file, args } = command(this.dataDir)
    this.generation++
    this.expectingExit = false
    const proc = spawn(file, args, {
      env: { ...process.env, JWT_SECRET, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    this.proc = proc
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        if (!this.expectingExit) {
          this.log(`!!! ${this.name} exited unexpectedly: code=${code} signal=${signal}`)
          if (!ECHO_LOGS) process.stderr.write(`${this.name} exited unexpectedly (code=${code} signal=${signal}); last log lines:\n${this.tail()}\n`)
        }
        resolve({ code, signal })
      })
    })
    const port = await new Promise((resolve, reject) => {
      let settled = false
      const settle = (err, value) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        if (err) reject(err)
        else resolve(value)
      }
      const timer = setTimeout(() => settle(new Error(`${this.name} did not report 'listening addr=' within ${START_TIMEOUT} ms:\n${this.tail()}`)), START_TIMEOUT)
      const onLine = (line) => {
        this.log(line)
        // tracing's default format prints `listening addr=127.0.0.1:PORT`; tolerate ANSI codes anyway
        const m = /listening.*?addr=127\.0\.0\.1:(\d+)/.exec(line.replace(/\x1b\[[0-9;]*m/g, ''))
        if (m) settle(null, Number(m[1]))
      }
      lines(proc.stderr, onLine)
      lines(proc.stdout, onLine)
      proc.once('error', (err) => settle(err))
      proc.once('exit', (code, signal) => settle(new Error(`${this.name} exited (code=${code} signal=${signal}) before listening:\n${this.tail()}`)))
    })
    this.port = port
    return this
  }

  /** Graceful stop (SIGTERM); SIGKILL if it does not exit within `timeout`. */
  async stop ({ timeout = 10_000 } = {}) {
    if (!this.running) return this.exited ? this.exited : null
    this.expectingExit = true
    this.proc.kill('SIGTERM')
    const timer = setTimeout(() => {
      this.log(`${this.name} did not exit ${timeout} ms after SIGTERM; sending SIGKILL`)
      this.proc?.kill('SIGKILL')
    }, timeout)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }

  /** Crash: SIGKILL, and wait until the process is gone. */
  async kill () {
    if (!this.running) return this.exited
    this.expectingExit = true
    this.proc.kill('SIGKILL')
    return await this.exited
  }

  /** Start again on the same data directory (a new port). */
  async restart ({ crash = false } = {}) {
    if (crash) await this.kill()
    else await this.stop()
    return await this.start()
  }

  /** Stop and remove the data directory (unless VELLUM_NODE_TEST_KEEP=1). */
  async dispose () {
    await this.stop()
    if (this.ownsDataDir) {
      if (KEEP_DATA) process.stderr.write(`${this.name}: keeping data dir ${this.dataDir}\n`)
      else fs.rmSync(this.dataDir, { recursive: true, force: true })
    }
  }
}

function lines (stream, onLine) {
  let buf = ''
  stream.setEncoding('utf8')
  // keep reading for the whole life of the process, so the pipe never fills up
  stream.on('data', (chunk) => {
    buf += chunk
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i))
      buf = buf.slice(i + 1)
    }
  })
  stream.on('end', () => { if (buf) onLine(buf) })
}
