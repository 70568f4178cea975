// Browser end-to-end harness: the real debug `vellum` binary (started the way the Node
// suite in tests/node starts it: port 0, a temp data dir, dev mode; its `listening` log line
// gives the address) and Debian's Chromium driven by playwright-core.

import fs from 'node:fs'
import path from 'node:path'
import { chromium } from 'playwright-core'
import { TestServer, repoRoot } from '../../../tests/node/lib/server.mjs'

export { repoRoot }

/** Screenshots land here (CI keeps this folder as artifacts). */
export const ARTIFACTS = path.join(repoRoot, 'target', 'e2e-artifacts')
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const PASSWORD = 'correct horse battery staple'

/** Register the server's first account, which becomes its admin. */
export async function registerAdmin (server) {
  const email = `admin-${run}@example.com`
  const res = await fetch(`${server.httpUrl}/api/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: PASSWORD, displayName: 'Grace Admin' })
  })
  const body = await res.json()
  if (res.status !== 201 || body.user?.role !== 'admin') throw new Error(`the first account should be the admin: ${res.status} ${JSON.stringify(body)}`)
  return { email, name: 'Grace Admin' }
}

export async function startServer () {
  const server = new TestServer({ name: 'vellum-ui' })
  await server.start()
  // A binary built from another checkout (a shared CARGO_TARGET_DIR) would not serve this UI.
  const res = await fetch(`${server.httpUrl}/documents/check`)
  const html = await res.text()
  if (!res.ok || !html.includes('<div id="root">') || !/\/assets\/index-[^"]+\.js/.test(html)) {
    await server.dispose()
    throw new Error(`the vellum binary does not serve the built admin UI at /documents/… (HTTP ${res.status}); ` +
      'run `npm run build` in admin-ui/ and `cargo build --bin vellum`, or set VELLUM_BIN to a binary built from this checkout')
  }
  return server
}

export async function launchBrowser () {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`)
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking']
  })
}

/**
 * Installed in every page: the editor's text without the remote carets. Their name labels
 * are text in the DOM, and a caret inside a sentence would hide it from a plain
 * `textContent` search. Null while there is no editor.
 */
function installEditorText () {
  window.editorText = () => {
    const e = document.querySelector('.ProseMirror')
    if (!e) return null
    const copy = e.cloneNode(true)
    for (const c of copy.querySelectorAll('.collaboration-carets__caret')) c.remove()
    return copy.textContent
  }
}

let users = 0
const run = `${process.pid}-${Date.now().toString(36)}`

/**
 * A browser context for one person, with console errors collected. `signUp` registers
 * through the API in this context, so the session cookie is the context's.
 */
export class Person {
  constructor (browser, server, name, { viewport = { width: 1280, height: 860 } } = {}) {
    this.browser = browser
    this.server = server
    this.name = name
    this.viewport = viewport
    this.email = `${name.toLowerCase().replace(/\s+/g, '-')}-${++users}-${run}@example.com`
    this.errors = []
    /** console errors a test expects (the browser logs every 4xx answer, wanted or not) */
    this.expected = []
  }

  /** The browser will log a `status` answer from `path` (e.g. a wrong password's 401): not an error. */
  expectHttpError (path, status) {
    this.expected.push((text, url) => text.includes(`status of ${status}`) && new URL(url).pathname === path)
  }

  async open () {
    this.context = await this.browser.newContext({ baseURL: this.server.httpUrl, viewport: this.viewport })
    await this.context.addInitScript(installEditorText)
    this.page = await this.context.newPage()
    this.watch(this.page)
    return this
  }

  watch (page) {
    page.on('console', (m) => {
      if (m.type() !== 'error') return
      const url = m.location()?.url ?? ''
      if (this.expected.some((ok) => { try { return ok(m.text(), url) } catch { return false } })) return
      this.errors.push(`console: ${m.text()} at ${url || '?'}`)
    })
    page.on('pageerror', (e) => this.errors.push(`page error: ${e.message}`))
  }

  /** Sign in as an existing account (its email and password). */
  async signIn (email, password = PASSWORD) {
    const res = await this.context.request.post('/api/auth/login', { data: { email, password } })
    if (res.status() !== 200) throw new Error(`login ${email}: ${res.status()} ${await res.text()}`)
    this.email = email
    this.user = (await res.json()).user
    return this
  }

  async signUp () {
    const res = await this.context.request.post('/api/auth/register', { data: { email: this.email, password: PASSWORD, displayName: this.name } })
    if (res.status() !== 201) throw new Error(`register ${this.email}: ${res.status()} ${await res.text()}`)
    this.user = (await res.json()).user
    return this
  }

  /** A GraphQL call as this person (cookie). */
  async gql (query, variables = {}) {
    const res = await this.context.request.post('/graphql', { data: { query, variables } })
    const body = await res.json()
    if (body.errors?.length) throw new Error(`${query}: ${JSON.stringify(body.errors)}`)
    return body.data
  }

  async goto (p) {
    await this.page.goto(p)
  }

  editor () { return this.page.locator('.ProseMirror') }

  /** Wait until the document's text (without caret labels) contains `text`. */
  async waitForText (text, { timeout = 30_000 } = {}) {
    await this.explain(`text “${text}”`, () => this.page.waitForFunction((t) => window.editorText()?.includes(t), text, { timeout }))
  }

  async waitForNoText (text, { timeout = 30_000 } = {}) {
    await this.explain(`no text “${text}”`, () => this.page.waitForFunction((t) => { const text = window.editorText(); return text !== null && !text.includes(t) }, text, { timeout }))
  }

  /** Run a wait; on failure, say what the page showed (URL, indicator, editor text, errors). */
  async explain (what, wait) {
    try {
      await wait()
    } catch (err) {
      const seen = await this.page.evaluate(() => ({
        url: location.href,
        sync: document.querySelector('.sync')?.textContent ?? '(no indicator)',
        text: window.editorText() ?? '(no editor)',
        body: document.body?.innerText?.slice(0, 300)
      })).catch((e) => ({ error: String(e) }))
      err.message = `${this.name} waiting for ${what}: ${err.message}\npage: ${JSON.stringify(seen)}\nconsole errors: ${JSON.stringify(this.errors)}`
      throw err
    }
  }

  /** The document's text, without the remote carets' name labels. */
  async text () {
    return this.page.evaluate(() => window.editorText() ?? '')
  }

  /** Wait for the connection indicator's state ('synced', 'offline', …). */
  async waitForSync (state, { timeout = 30_000 } = {}) {
    await this.explain(`sync state ${state}`, () => this.page.waitForFunction((s) => document.querySelector('.sync')?.dataset.state === s, state, { timeout }))
  }

  async close () { await this.context?.close() }
}

export async function screenshot (page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true })
  const file = path.join(ARTIFACTS, name)
  await page.screenshot({ path: file })
  return file
}

/** Whether the server has the versions capability (it lands separately). */
export async function serverHas (person, typeName, field) {
  const d = await person.gql('query($n: String!) { __type(name: $n) { fields { name } } }', { n: typeName })
  return Boolean(d.__type?.fields?.some((f) => f.name === field))
}
