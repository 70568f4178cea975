// The admin UI's plugin pages in Chromium against the real server: an admin turns bundled
// plugins on and sets one up, then an editor's publish is refused by it in place and a
// saved version shows what another computed. Every wait is on an event or a DOM
// condition (waitForFunction / locators), never a sleep.

import { after, before, afterEach, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Person, launchBrowser, registerAdmin, screenshot, serverHas, startServer } from './lib/harness.mjs'

const BUNDLED = ['word-count', 'slugify', 'banned-words', 'heading-anchors']

let server, browser, admin
const people = []

async function person (name, opts) {
  const p = await new Person(browser, server, name, opts).open()
  people.push(p)
  return p
}

before(async () => {
  server = await startServer()
  admin = await registerAdmin(server)
  browser = await launchBrowser()
})

after(async () => {
  await browser?.close()
  await server?.dispose()
})

afterEach(async () => {
  // no console errors anywhere, in any test
  const errors = people.flatMap((p) => p.errors.map((e) => `${p.name}: ${e}`))
  for (const p of people.splice(0)) await p.close()
  assert.deepEqual(errors, [], 'console errors in the browser')
})

/** Type `text` at the end of the document (the caret put there through the editor, as in editor.test.mjs). */
async function typeAtEnd (p, text) {
  await p.page.evaluate(() => document.querySelector('.ProseMirror').editor.commands.focus('end'))
  await p.explain('the caret at the end', () => p.page.waitForFunction(() => {
    const editor = document.querySelector('.ProseMirror')?.editor
    const { selection, doc } = editor.state
    return editor.isFocused && selection.empty && selection.to === doc.content.size - 1
  }))
  await p.page.keyboard.type(text)
}

/** Every keystroke acknowledged by the server (what a publish or a version reads). */
async function allSent (p) {
  await p.explain('all changes sent', () => p.page.waitForFunction(() => {
    const s = document.querySelector('.sync')
    return s?.dataset.state === 'synced' && s.dataset.unsent === '0'
  }))
}

/** The card of one plugin on the Plugins page. */
const card = (p, name) => p.page.locator(`.plugin[data-name="${name}"]`)

async function waitForStatus (p, name, status) {
  await p.explain(`${name} ${status}`, () => p.page.locator(`.plugin[data-name="${name}"][data-status="${status}"]`).waitFor())
}

describe('plugins in the admin UI', () => {
  test('an admin enables and configures bundled plugins; a publish is refused in place; a version shows its word count', async (t) => {
    const grace = await person(admin.name)
    await grace.signIn(admin.email)
    if (!(await serverHas(grace, 'Query', 'plugins'))) {
      t.skip('the server has no plugins API yet')
      return
    }

    // the Plugins link is in the navigation for admins
    await grace.goto('/')
    await grace.page.getByRole('heading', { name: 'Documents' }).waitFor()
    await grace.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Plugins' }).click()
    await grace.page.waitForURL(/\/plugins$/)
    await grace.page.getByRole('heading', { name: 'Plugins', level: 1 }).waitFor()

    // the bundled plugins are listed, turned off
    for (const name of BUNDLED) {
      await grace.explain(`the card of ${name}`, () => card(grace, name).waitFor())
      assert.equal(await card(grace, name).getAttribute('data-status'), 'DISABLED', name)
      assert.equal((await card(grace, name).locator('.plugin-status').textContent()).trim(), 'Disabled', name)
    }
    await card(grace, 'word-count').locator('.hooks code', { hasText: 'enrich' }).waitFor()
    await card(grace, 'banned-words').locator('.hooks code', { hasText: 'before-publish' }).waitFor()
    // bundled plugins get what they request: banned-words' `config` is granted
    assert.equal(await card(grace, 'banned-words').getByRole('checkbox', { name: /config/ }).isChecked(), true)

    // enable word-count and banned-words
    for (const name of ['word-count', 'banned-words']) {
      await card(grace, name).getByRole('button', { name: 'Enable', exact: true }).click()
      await waitForStatus(grace, name, 'ENABLED')
      assert.equal((await card(grace, name).locator('.plugin-status').textContent()).trim(), 'Enabled', name)
    }
    // the others stay off
    assert.equal(await card(grace, 'slugify').getAttribute('data-status'), 'DISABLED')

    // banned-words: the words setting (an array: one value per line)
    const banned = card(grace, 'banned-words')
    await banned.getByLabel('words', { exact: true }).fill('frobnicate')
    await banned.getByRole('button', { name: 'Save settings' }).click()
    await banned.getByRole('status').filter({ hasText: 'Settings saved.' }).waitFor()
    const stored = (await grace.gql('{ plugins { name config } }')).plugins.find((p) => p.name === 'banned-words')
    assert.deepEqual(stored.config, { words: ['frobnicate'] })
    // a refresh shows what the server stored
    await grace.page.getByRole('button', { name: 'Refresh' }).click()
    await grace.page.waitForFunction(() => document.querySelector('.plugin[data-name="banned-words"] textarea')?.value === 'frobnicate')
    await banned.scrollIntoViewIfNeeded()
    await screenshot(grace.page, 'plugins.png')

    // a document with the banned word
    await grace.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Documents' }).click()
    await grace.page.getByLabel('New document title').fill('Plugin notes')
    await grace.page.getByRole('button', { name: 'New document' }).click()
    await grace.page.waitForURL(/\/documents\/[^/]+$/)
    await grace.waitForSync('synced')
    await typeAtEnd(grace, 'Our team says we frobnicate daily.')
    await grace.waitForText('we frobnicate daily')
    await allSent(grace)

    // publishing is refused by banned-words, in place, naming the plugin and the word
    await grace.page.getByRole('button', { name: 'Publish', exact: true }).click()
    const notice = grace.page.getByTestId('publish-error')
    await grace.explain('the plugin’s refusal', () => notice.waitFor())
    assert.equal(await notice.getAttribute('role'), 'alert')
    assert.equal(await notice.getAttribute('data-plugin'), 'banned-words')
    const said = await notice.textContent()
    assert.match(said, /banned-words/)
    assert.match(said, /frobnicate/)
    assert.match(said, /Not published/)
    // nothing was published
    await grace.page.getByRole('button', { name: 'Publish', exact: true }).waitFor()
    assert.notEqual(await grace.page.getByLabel('Status').inputValue(), 'PUBLISHED')
    // the refusal is about the body: the title and slug inputs are not marked
    assert.equal(await grace.page.getByLabel('Title').getAttribute('aria-invalid'), null)
    await screenshot(grace.page, 'plugin-rejected.png')

    // a saved version gets word-count's fields, shown in the sidebar
    await grace.page.keyboard.press('Control+s')
    const label = grace.page.getByLabel('Version label')
    await label.waitFor()
    await label.fill('First draft')
    await grace.page.getByRole('button', { name: 'Save version' }).click()
    await grace.page.locator('.versions li', { hasText: 'First draft' }).waitFor()
    const words = grace.page.getByTestId('word-count')
    await grace.explain('the word count', () => grace.page.locator('[data-testid="word-count"]', { hasText: '6 words · 1 min read' }).waitFor())
    assert.equal((await words.textContent()).trim(), '6 words · 1 min read')
    await grace.page.locator('.versions li', { hasText: 'First draft' }).filter({ hasText: '6 words' }).waitFor()
    await screenshot(grace.page, 'plugin-word-count.png')
  })

  test('someone who is not an admin has no Plugins link and is told so on the page', async (t) => {
    const ed = await person('Edna Author')
    await ed.signUp()
    if (!(await serverHas(ed, 'Query', 'plugins'))) {
      t.skip('the server has no plugins API yet')
      return
    }
    await ed.goto('/')
    await ed.page.getByRole('heading', { name: 'Documents' }).waitFor()
    assert.equal(await ed.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Plugins' }).count(), 0)
    await ed.goto('/plugins')
    await ed.page.getByRole('alert').filter({ hasText: 'Only admins manage plugins' }).waitFor()
  })
})
