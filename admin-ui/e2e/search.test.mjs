// The admin UI's Search page in Chromium against the real server: an admin writes a word,
// saves it in version 1, replaces it in version 2, finds it in version 1 only, opens that
// version's diff against the live text in the editor, and rebuilds the index; someone
// else finds nothing of it and has no Index panel. Every wait is on an event, a DOM
// condition or an API answer (the index catching up), never a sleep.

import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { screenshot, serverHas, until, useSuite } from './lib/harness.mjs'

const suite = useSuite()

/** Letters only (one token), unique to this run: `zephyr` + 6 random letters + `x`. */
const made = () => `zephyr${Array.from({ length: 6 }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join('')}x`
const word = made()
const other = made()

const hits = (p) => p.page.locator('ol.hits > li.hit')
const queryBox = (p) => p.page.getByRole('searchbox', { name: 'Search text and history' })

async function waitForCount (p, text) {
  await p.explain(`“${text}”`, () => p.page.locator('.search-count', { hasText: new RegExp(`^${text}$`) }).waitFor())
}

describe('search in the admin UI', () => {
  test('an old word is found in version 1 only, opens that version’s diff, and the index rebuilds', async (t) => {
    const grace = await suite.adminPerson()
    if (!(await serverHas(grace, 'Query', 'search'))) {
      t.skip('the server has no search API yet')
      return
    }

    // `/` on any page but a text field opens Search, with the query box focused
    await grace.goto('/')
    await grace.page.getByRole('heading', { name: 'Documents' }).waitFor()
    await grace.page.keyboard.press('/')
    await grace.page.waitForURL(/\/search$/)
    await grace.page.getByRole('heading', { name: 'Search', level: 1 }).waitFor()
    await grace.page.waitForFunction(() => document.activeElement?.getAttribute('aria-label') === 'Search text and history')

    // a document: the word in version 1, replaced in version 2 (and in the live text)
    await grace.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Documents' }).click()
    const docId = await grace.createDocument('Search notes')
    await grace.typeAtEnd(`The ${word} team writes the release notes.`)
    await grace.waitForText(word)
    await grace.allSent()
    await grace.saveVersion('First draft')
    await grace.selectText(word)
    await grace.page.keyboard.type(other)
    await grace.waitForNoText(word)
    await grace.waitForText(other)
    assert.equal((await grace.text()).trim(), `The ${other} team writes the release notes.`)
    await grace.allSent()
    await grace.saveVersion('Second draft')

    // the index has caught up: both versions, and the live draft as it is now
    await until('the index to hold both versions and the new live draft', async () => {
      const d = await grace.gql(`query($d: ID!, $old: String!, $new: String!) {
        old: search(query: $old, filter: { documentId: $d }) { totalCount }
        now: search(query: $new, filter: { documentId: $d }) { totalCount edges { node { kind versionNumber } } } }`,
      { d: docId, old: word, new: other })
      return { ok: d.old.totalCount === 1 && d.now.totalCount === 2, ...d }
    })

    // the Search link in the navigation; the old word finds version 1 alone
    await grace.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Search' }).click()
    await grace.page.waitForURL(/\/search$/)
    assert.equal(await grace.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Search' }).getAttribute('aria-current'), 'page')
    await queryBox(grace).fill(word)
    await waitForCount(grace, '1 result')
    assert.equal(new URL(grace.page.url()).searchParams.get('q'), word)
    assert.equal(await hits(grace).count(), 1)
    const hit = hits(grace).first()
    assert.equal(await hit.getAttribute('data-kind'), 'VERSION')
    assert.equal(await hit.getAttribute('data-version'), '1')
    assert.equal(await hit.getAttribute('data-document'), docId)
    assert.equal((await hit.locator('.hit-kind').textContent()).trim(), 'Version 1 “First draft”')
    assert.equal((await hit.locator('.hit-title').textContent()).trim(), 'Search notes')
    assert.match(await hit.locator('.hit-meta').textContent(), /Grace Admin/)
    const snippet = await hit.locator('.snippet').first().innerHTML()
    assert.ok(snippet.includes(`<mark>${word}</mark>`), `the snippet marks the word: ${snippet}`)
    assert.equal(await hit.locator('.snippet mark').first().textContent(), word)

    // the Index panel (admins): its figures, and the syntax help open
    const panel = grace.page.getByRole('complementary', { name: 'Index' })
    await grace.explain('the index figures', () => panel.getByTestId('index-entries').waitFor())
    assert.ok(Number((await panel.getByTestId('index-entries').textContent()).replace(/,/g, '')) >= 3)
    await grace.page.getByText('Query syntax').click()
    await grace.page.locator('.search-help code', { hasText: 'colaborate~' }).waitFor()
    await screenshot(grace.page, 'search.png')

    // the scope lives in the URL: a reload keeps the search
    await grace.page.getByRole('group', { name: 'Scope' }).getByRole('button', { name: 'Live drafts' }).click()
    await waitForCount(grace, '0 results')
    await grace.page.getByText(`No results for “${word}”. Try fewer filters.`).waitFor()
    await grace.page.getByRole('group', { name: 'Scope' }).getByRole('button', { name: 'Saved versions' }).click()
    await waitForCount(grace, '1 result')
    assert.equal(new URL(grace.page.url()).searchParams.get('scope'), 'versions')
    await grace.page.reload()
    await waitForCount(grace, '1 result')
    assert.equal(await queryBox(grace).inputValue(), word)
    assert.equal(await grace.page.getByRole('button', { name: 'Saved versions' }).getAttribute('aria-pressed'), 'true')
    await grace.page.getByRole('button', { name: 'Clear filters' }).click()
    await grace.page.waitForURL((u) => !u.searchParams.has('scope') && u.searchParams.get('q') === word)

    // a syntax error is said next to the query box, with where it went wrong
    await queryBox(grace).fill('"unclosed')
    const syntax = grace.page.locator('.query-error')
    await grace.explain('the syntax error', () => syntax.waitFor())
    assert.match(await syntax.textContent(), /this quote is never closed \(at character 1\)/)
    assert.equal(await syntax.getAttribute('role'), 'alert')
    assert.equal(await queryBox(grace).getAttribute('aria-invalid'), 'true')
    assert.equal(await hits(grace).count(), 0)
    // Enter searches at once; the error goes
    await queryBox(grace).fill(word)
    await queryBox(grace).press('Enter')
    await waitForCount(grace, '1 result')
    assert.equal(await syntax.count(), 0)
    assert.equal(await queryBox(grace).getAttribute('aria-invalid'), null)

    // Rebuild index: a progress bar while it runs, then it says it finished
    await panel.getByRole('button', { name: 'Rebuild index' }).click()
    await grace.explain('the rebuild’s progress', () => panel.getByRole('progressbar', { name: 'Rebuild progress' }).waitFor())
    const done = panel.getByTestId('rebuild-done')
    await grace.explain('the rebuild to finish', () => done.waitFor({ timeout: 60_000 }))
    assert.match(await done.textContent(), /^Index rebuilt: \d+ entries\.$/)
    assert.equal(await panel.getByRole('progressbar').count(), 0)
    await panel.getByRole('button', { name: 'Rebuild index' }).waitFor()
    assert.equal(await panel.getByRole('button', { name: 'Rebuild index' }).isEnabled(), true)
    // the rebuilt index answers the same
    await queryBox(grace).press('Enter')
    await waitForCount(grace, '1 result')

    // Open: the editor, the history on version 1, its diff against the live text
    await hit.getByRole('link', { name: /^Open Version 1/ }).click()
    await grace.page.waitForURL((u) => u.pathname === `/documents/${docId}` && u.searchParams.get('version') === '1')
    await grace.waitForText(other)
    const history = grace.page.getByRole('complementary', { name: 'History' })
    const selected = history.locator('.versions li.selected')
    await grace.explain('version 1 selected', () => selected.waitFor())
    assert.equal(await selected.getAttribute('data-version'), '1')
    assert.match(await selected.textContent(), /First draft/)
    assert.equal(await history.locator('.versions li.selected').count(), 1)
    assert.equal(await selected.getByLabel('Compare with').inputValue(), 'live')
    // version 1 → live: the old word removed, the new one inserted
    await grace.explain('the word removed in the diff', () => selected.locator('.diff del', { hasText: word }).waitFor())
    await selected.locator('.diff ins', { hasText: other }).waitFor()
    await screenshot(grace.page, 'search-history.png')

    // from the history: this document's search, its live draft opens the plain editor
    await history.getByRole('link', { name: 'Search this document’s history' }).click()
    await grace.page.waitForURL((u) => u.pathname === '/search' && u.searchParams.get('doc') === docId)
    await grace.page.getByTestId('document-filter').filter({ hasText: 'In “Search notes”' }).waitFor()
    await queryBox(grace).fill(other)
    await waitForCount(grace, '2 results')
    assert.deepEqual(await hits(grace).evaluateAll((els) => els.map((e) => `${e.dataset.kind}:${e.dataset.version ?? ''}`).sort()), ['LIVE:', 'VERSION:2'])
    const live = hits(grace).and(grace.page.locator('[data-kind="LIVE"]'))
    assert.equal((await live.locator('.hit-kind').textContent()).trim(), 'Live draft')
    await live.getByRole('link', { name: /^Open Live draft/ }).click()
    await grace.page.waitForURL((u) => u.pathname === `/documents/${docId}` && u.search === '')
    await grace.waitForText(other)
    assert.equal(await grace.page.getByRole('complementary', { name: 'History' }).count(), 0)
  })

  test('someone else finds nothing of a document not shared with them, and has no Index panel', async (t) => {
    const nora = await suite.person('Nora Author')
    await nora.signUp()
    if (!(await serverHas(nora, 'Query', 'search'))) {
      t.skip('the server has no search API yet')
      return
    }
    // a link to a search works as it is
    await nora.goto(`/search?q=${encodeURIComponent(word)}`)
    await waitForCount(nora, '0 results')
    assert.equal(await queryBox(nora).inputValue(), word)
    await nora.page.getByText(`No results for “${word}”.`).waitFor()
    assert.equal(await nora.page.getByRole('complementary', { name: 'Index' }).count(), 0)
    assert.equal(await nora.page.getByRole('button', { name: 'Rebuild index' }).count(), 0)
  })
})
