// The admin UI's plugin pages in Chromium against the real server: an admin turns bundled
// plugins on and sets one up, then an editor's publish is refused by it in place and a
// saved version shows what another computed. Every wait is on an event or a DOM
// condition (waitForFunction / locators), never a sleep.

import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { screenshot, serverHas, useSuite } from './lib/harness.mjs'

const BUNDLED = ['word-count', 'slugify', 'banned-words', 'heading-anchors']

const suite = useSuite()

/** The card of one plugin on the Plugins page. */
const card = (p, name) => p.page.locator(`.plugin[data-name="${name}"]`)

async function waitForStatus (p, name, status) {
  await p.explain(`${name} ${status}`, () => p.page.locator(`.plugin[data-name="${name}"][data-status="${status}"]`).waitFor())
}

describe('plugins in the admin UI', () => {
  test('an admin enables and configures bundled plugins; a publish is refused in place; a version shows its word count', async (t) => {
    const grace = await suite.adminPerson()
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
    await grace.createDocument('Plugin notes')
    await grace.typeAtEnd('Our team says we frobnicate daily.')
    await grace.waitForText('we frobnicate daily')
    await grace.allSent()

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
    await grace.saveVersion('First draft')
    const words = grace.page.getByTestId('word-count')
    await grace.explain('the word count', () => grace.page.locator('[data-testid="word-count"]', { hasText: '6 words · 1 min read' }).waitFor())
    assert.equal((await words.textContent()).trim(), '6 words · 1 min read')
    await grace.page.locator('.versions li', { hasText: 'First draft' }).filter({ hasText: '6 words' }).waitFor()
    await screenshot(grace.page, 'plugin-word-count.png')
  })

  test('someone who is not an admin has no Plugins link and is told so on the page', async (t) => {
    const ed = await suite.person('Edna Author')
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
