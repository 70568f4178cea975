// Browser end-to-end harness: the real debug `vellum` binary (started the way the Node
// suite in tests/node starts it: port 0, a temp data dir, dev mode; its `listening` log line
// gives the address) and Debian's Chromium driven by playwright-core. `useSuite()` sets a
// test file up (server, admin, browser, people, no console errors); `Person` is one
// browser context with the steps the suites share (sign in, create a document, type,
// save a version).

import fs from 'node:fs'
import path from 'node:path'
import { after, afterEach, before } from 'node:test'
import assert from 'node:assert/strict'
import { chromium } from 'playwright-core'
import { TestServer, repoRoot } from '../../../tests/node/lib/server.mjs'

export { repoRoot }

/** Screenshots land here (CI keeps this folder as artifacts). */
export const ARTIFACTS = path.join(repoRoot, 'target', 'e2e-artifacts')
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
export const PASSWORD = 'correct horse battery staple'

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

  /** Every keystroke acknowledged by the server (what a publish or a version reads). */
  async allSent () {
    await this.explain('all changes sent', () => this.page.waitForFunction(() => {
      const s = document.querySelector('.sync')
      return s?.dataset.state === 'synced' && s.dataset.unsent === '0'
    }))
  }

  /**
   * Type `text` at the end of the document. The caret is put there through the editor
   * (TipTap hangs it on its element) and checked before typing: a click and Control+End
   * sometimes left ProseMirror's selection at the start, as the browser moves the caret and
   * ProseMirror reads it back later, and the text went in before everyone else's.
   */
  async typeAtEnd (text, { newParagraph = false } = {}) {
    await this.page.evaluate(() => document.querySelector('.ProseMirror').editor.commands.focus('end'))
    await this.explain('the caret at the end', () => this.page.waitForFunction(() => {
      const editor = document.querySelector('.ProseMirror')?.editor
      const { selection, doc } = editor.state
      return editor.isFocused && selection.empty && selection.to === doc.content.size - 1
    }))
    if (newParagraph) await this.page.keyboard.press('Enter')
    await this.page.keyboard.type(text)
  }

  /**
   * Select the first occurrence of `text` in the document (typing then replaces it). The
   * editor is focused first and waited for: TipTap focuses on the next animation frame,
   * and would put back the selection it had.
   */
  async selectText (text) {
    await this.page.evaluate(() => document.querySelector('.ProseMirror').editor.commands.focus())
    await this.explain('the editor focused', () => this.page.waitForFunction(() => document.querySelector('.ProseMirror')?.editor.isFocused))
    const found = await this.page.evaluate((t) => {
      const editor = document.querySelector('.ProseMirror').editor
      let from = null
      editor.state.doc.descendants((node, pos) => {
        if (from !== null || !node.isText) return from === null
        const i = node.text.indexOf(t)
        if (i >= 0) from = pos + i
        return false
      })
      if (from === null) return false
      editor.commands.setTextSelection({ from, to: from + t.length })
      return true
    }, text)
    if (!found) throw new Error(`${this.name}: no “${text}” in the document to select`)
    await this.explain(`“${text}” selected`, () => this.page.waitForFunction((t) => {
      const editor = document.querySelector('.ProseMirror').editor
      const { from, to } = editor.state.selection
      return editor.isFocused && editor.state.doc.textBetween(from, to) === t
    }, text))
  }

  /** On the document list: create a document through its form and wait for the editor. Returns its id. */
  async createDocument (title) {
    await this.page.getByRole('heading', { name: 'Documents' }).waitFor()
    await this.page.getByLabel('New document title').fill(title)
    await this.page.getByRole('button', { name: 'New document' }).click()
    await this.page.waitForURL(/\/documents\/[^/]+$/)
    await this.waitForSync('synced')
    return decodeURIComponent(new URL(this.page.url()).pathname.split('/').pop())
  }

  /** In the editor: Ctrl+S opens the history on the label field; save a version. Returns its item in the sidebar. */
  async saveVersion (label) {
    await this.page.keyboard.press('Control+s')
    const input = this.page.getByLabel('Version label')
    await input.waitFor()
    await input.fill(label)
    await this.page.getByRole('button', { name: 'Save version' }).click()
    const item = this.page.locator('.versions li', { hasText: label })
    await this.explain(`version “${label}” in the history`, () => item.waitFor())
    return item
  }

  async close () { await this.context?.close() }
}

/**
 * Sets a test file up, with node:test hooks: one server (with its admin, registered
 * first) and one browser for the file; the people a test opens are closed after it, and
 * a console error in any of their pages fails the test.
 */
export function useSuite () {
  const suite = {
    server: null,
    browser: null,
    /** `{ email, name }` of the server's admin */
    admin: null,
    people: [],
    /** A person with an open page (not signed in yet). */
    async person (name, opts) {
      const p = await new Person(suite.browser, suite.server, name, opts).open()
      suite.people.push(p)
      return p
    },
    /** The admin, signed in. */
    async adminPerson (opts) {
      const p = await suite.person(suite.admin.name, opts)
      return p.signIn(suite.admin.email)
    }
  }
  before(async () => {
    suite.server = await startServer()
    suite.admin = await registerAdmin(suite.server)
    suite.browser = await launchBrowser()
  })
  after(async () => {
    await suite.browser?.close()
    await suite.server?.dispose()
  })
  afterEach(async () => {
    // no console errors anywhere, in any test
    const errors = suite.people.flatMap((p) => p.errors.map((e) => `${p.name}: ${e}`))
    for (const p of suite.people.splice(0)) await p.close()
    assert.deepEqual(errors, [], 'console errors in the browser')
  })
  return suite
}

/**
 * Ask `probe()` (on the Node side: an API call) again every `interval` ms until it answers
 * `{ ok: true, … }`; on timeout, fail naming `what` and its last answer. For conditions no
 * page shows (the search index caught up), so a test waits for them instead of sleeping.
 */
export async function until (what, probe, { timeout = 15_000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout
  for (;;) {
    const last = await probe()
    if (last.ok) return last
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`)
    await new Promise((resolve) => setTimeout(resolve, interval))
  }
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
