// The admin UI in Chromium against the real server: two people editing one document.
// Every wait is on an event or a DOM condition (waitForFunction / locators), never a sleep.

import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { PASSWORD, screenshot, serverHas, useSuite } from './lib/harness.mjs'

const suite = useSuite()
const person = (name, opts) => suite.person(name, opts)

/** Ada (through the sign-up screen) creates a document and shares it with Bob as editor. */
async function adaAndBob () {
  const ada = await person('Ada Lovelace')
  await ada.goto('/')
  await ada.page.getByRole('tab', { name: 'Create account' }).click()
  await ada.page.getByLabel('Name').fill(ada.name)
  await ada.page.getByLabel('Email').fill(ada.email)
  await ada.page.getByLabel('Password').fill(PASSWORD)
  await ada.page.getByRole('button', { name: 'Create account' }).click()
  const docId = await ada.createDocument('Launch notes')

  const bob = await person('Bob Babbage')
  await bob.signUp()
  // share through the dialog
  await ada.page.getByRole('button', { name: 'Share' }).click()
  await ada.page.getByLabel('Email').fill(bob.email)
  await ada.page.getByLabel('Access').selectOption('EDITOR')
  await ada.page.getByRole('dialog').getByRole('button', { name: 'Share' }).click()
  await ada.page.getByText(`${bob.email} can now edit`).waitFor()
  await ada.page.getByRole('button', { name: 'Close' }).click()

  await bob.goto(`/documents/${docId}`)
  await bob.waitForSync('synced')
  return { ada, bob, docId }
}

/** Wait until the server has stored `title` for the document open in `p`'s page. */
async function storedTitle (p, title) {
  await p.page.waitForFunction(async (t) => {
    const id = location.pathname.split('/').pop()
    const r = await fetch('/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: `{ document(id: "${id}", draft: true) { title } }` }) })
    return (await r.json()).data?.document?.title === t
  }, title)
}

describe('admin UI', () => {
  test('two people type in different paragraphs and see each other’s text, carets and names', async () => {
    const { ada, bob, docId } = await adaAndBob()
    await ada.typeAtEnd('Ada writes the first paragraph.')
    await bob.waitForText('Ada writes the first paragraph.')
    await bob.typeAtEnd('Bob adds a second one.', { newParagraph: true })
    await ada.waitForText('Bob adds a second one.')
    assert.equal(await ada.page.locator('.ProseMirror p').count(), 2)
    // each sees the other's caret with their name
    await ada.page.locator('.collaboration-carets__label', { hasText: bob.name }).waitFor()
    await bob.page.locator('.collaboration-carets__label', { hasText: ada.name }).waitFor()
    // presence shows both names on both sides
    for (const p of [ada, bob]) {
      await p.page.locator(`.presence li[data-name="${ada.name}"]`).waitFor()
      await p.page.locator(`.presence li[data-name="${bob.name}"]`).waitFor()
    }
    await ada.waitForSync('synced')
    await bob.waitForSync('synced')
    assert.equal(await ada.text(), await bob.text())

    // a third person watching sees both carets (and Ada's selection)
    const carol = await person('Carol Viewer')
    await carol.signUp()
    await ada.gql('mutation($d: ID!, $e: String!) { grantAccess(documentId: $d, userEmail: $e, role: VIEWER) }', { d: docId, e: carol.email })
    await ada.editor().locator('p').first().click()
    await ada.page.keyboard.press('Home')
    await ada.page.keyboard.press('Control+Shift+ArrowRight')
    await ada.page.keyboard.press('Control+Shift+ArrowRight')
    await carol.goto(`/documents/${docId}`)
    await carol.waitForText('Bob adds a second one.')
    await carol.page.locator('.collaboration-carets__label', { hasText: ada.name }).waitFor()
    await carol.page.locator('.collaboration-carets__label', { hasText: bob.name }).waitFor()
    await carol.page.locator('.presence li[data-name="Carol Viewer"]').waitFor()
    await screenshot(carol.page, 'editor-two-carets.png')

    // sign out returns to the sign-in screen
    await ada.page.getByRole('button', { name: ada.name }).click()
    await ada.page.getByRole('menuitem', { name: 'Sign out' }).click()
    await ada.page.getByRole('button', { name: 'Sign in' }).waitFor()
  })

  test('offline edits are counted, sent on reconnect, and both converge', async () => {
    const { ada, bob } = await adaAndBob()
    await ada.typeAtEnd('Shared start.')
    await bob.waitForText('Shared start.')
    await bob.context.setOffline(true)
    await bob.waitForSync('offline')
    await bob.typeAtEnd('Typed on the train.', { newParagraph: true })
    await bob.page.waitForFunction(() => Number(document.querySelector('.sync')?.dataset.unsent) > 0)
    assert.match(await bob.page.locator('.sync').textContent(), /Offline · \d+ unsent changes?/)
    await ada.typeAtEnd(' Meanwhile at the office.')
    await bob.context.setOffline(false)
    await ada.waitForText('Typed on the train.')
    await bob.waitForText('Meanwhile at the office.')
    await bob.waitForSync('synced')
    await ada.waitForSync('synced')
    assert.equal(await bob.page.locator('.sync').getAttribute('data-unsent'), '0')
    assert.equal(await ada.text(), await bob.text())
  })

  test('a reload while offline keeps the unsent edits', async () => {
    const { ada, bob } = await adaAndBob()
    await ada.typeAtEnd('Before the tunnel.')
    await bob.waitForText('Before the tunnel.')
    // the service worker must control the page to serve the app shell offline
    await bob.page.waitForFunction(() => navigator.serviceWorker?.controller != null)
    await bob.context.setOffline(true)
    await bob.waitForSync('offline')
    await bob.typeAtEnd('Written in the tunnel.', { newParagraph: true })
    await bob.page.waitForFunction(() => Number(document.querySelector('.sync')?.dataset.unsent) > 0)
    // every keystroke is in IndexedDB before the reload (the indicator knows when)
    await bob.page.waitForFunction(() => document.querySelector('.sync')?.dataset.localPending === '0')
    await bob.page.reload()
    await bob.waitForText('Written in the tunnel.')
    await bob.waitForSync('offline')
    await bob.page.waitForFunction(() => Number(document.querySelector('.sync')?.dataset.unsent) > 0)
    await bob.context.setOffline(false)
    await ada.waitForText('Written in the tunnel.')
    await bob.waitForSync('synced')
    assert.equal(await bob.page.locator('.sync').getAttribute('data-unsent'), '0')
  })

  test('a metadata conflict shows the other person’s value and lets the user choose', async () => {
    const { ada, bob } = await adaAndBob()
    const bobTitle = bob.page.getByLabel('Title')
    await bobTitle.fill('Bob’s title')               // a draft, not saved yet
    const adaTitle = ada.page.getByLabel('Title')
    await adaTitle.fill('Ada’s title')
    await adaTitle.press('Enter')
    await storedTitle(ada, 'Ada’s title')
    await bobTitle.press('Enter')
    const dialog = bob.page.getByRole('dialog', { name: 'Someone else changed this document' })
    await dialog.waitFor()
    assert.equal(await dialog.getByTestId('theirs-title').textContent(), 'Ada’s title')
    assert.equal(await dialog.getByTestId('mine-title').textContent(), 'Bob’s title')
    await screenshot(bob.page, 'conflict-dialog.png')
    await dialog.getByLabel('Yours').check()
    await dialog.getByRole('button', { name: 'Apply' }).click()
    await dialog.waitFor({ state: 'detached' })
    assert.equal(await bobTitle.inputValue(), 'Bob’s title')
    await storedTitle(ada, 'Bob’s title')
    // Ada's page follows (documentChanged)
    await ada.page.waitForFunction(() => document.querySelector('input[aria-label="Title"]')?.value === 'Bob’s title')
  })

  test('a viewer cannot type', async () => {
    const { ada, docId } = await adaAndBob()
    await ada.typeAtEnd('Read but do not touch.')
    const vera = await person('Vera Viewer', { viewport: { width: 820, height: 1000 } })
    await vera.signUp()
    await ada.gql('mutation($d: ID!, $e: String!) { grantAccess(documentId: $d, userEmail: $e, role: VIEWER) }', { d: docId, e: vera.email })
    await vera.goto(`/documents/${docId}`)
    await vera.waitForText('Read but do not touch.')
    await vera.page.locator('.ProseMirror[contenteditable="false"]').waitFor()
    await vera.page.getByRole('note').filter({ hasText: 'not edit' }).waitFor()
    await vera.editor().click()
    await vera.page.keyboard.type('vandalism')
    await ada.typeAtEnd(' Still Ada.')
    await vera.waitForText('Still Ada.')
    assert.ok(!(await vera.text()).includes('vandalism'))
    assert.ok(!(await ada.text()).includes('vandalism'))
    const overflow = await vera.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth)
    assert.equal(overflow, false, 'no horizontal scrolling at tablet width')
    await screenshot(vera.page, 'editor-viewer-tablet.png')
  })

  test('versions: save, type more, diff, restore for everyone', async (t) => {
    const { ada, bob } = await adaAndBob()
    if (!(await serverHas(ada, 'Mutation', 'saveVersion'))) {
      t.skip('the server has no versions API yet')
      return
    }
    await ada.typeAtEnd('The first draft.')
    await bob.waitForText('The first draft.')
    await ada.waitForSync('synced')
    const item = await ada.saveVersion('First draft')
    await bob.typeAtEnd('Later additions by Bob.', { newParagraph: true })
    await ada.waitForText('Later additions by Bob.')
    await bob.waitForSync('synced')
    await item.getByRole('button').first().click()
    await ada.page.locator('.diff ins', { hasText: 'Later' }).waitFor()
    await screenshot(ada.page, 'history-diff.png')
    // view the version as it was
    await item.getByRole('tab', { name: 'View' }).click()
    await item.locator('.version-view', { hasText: 'The first draft.' }).waitFor()
    assert.ok(!(await item.locator('.version-view').textContent()).includes('Later additions'))
    await item.getByRole('button', { name: 'Restore this version…' }).click()
    await ada.page.getByRole('dialog').getByRole('button', { name: 'Restore' }).click()
    await ada.waitForNoText('Later additions by Bob.')
    await bob.waitForNoText('Later additions by Bob.')
    assert.ok((await bob.text()).includes('The first draft.'))
    await ada.page.locator('.versions li', { hasText: 'Restored' }).first().waitFor()
  })

  test('publish: an author’s refusal is shown in place; an admin publishes and unpublishes', async (t) => {
    const { ada, bob, docId } = await adaAndBob()
    if (!(await serverHas(ada, 'Mutation', 'publish'))) {
      t.skip('the server has no publish API yet')
      return
    }
    // Bob is an author (with an editor grant): authors cannot publish
    await bob.page.getByRole('button', { name: 'Publish', exact: true }).click()
    await bob.page.getByTestId('publish-error').waitFor()
    assert.match(await bob.page.getByTestId('publish-error').textContent(), /Not allowed: .*publish/)
    // the admin can, with the keyboard shortcut
    const grace = await suite.adminPerson()
    await grace.goto(`/documents/${docId}`)
    await grace.waitForSync('synced')
    await grace.page.keyboard.press('Control+Shift+P')
    await Promise.race([
      grace.page.getByRole('button', { name: 'Unpublish' }).waitFor(),
      grace.page.getByTestId('publish-error').waitFor().then(async () => { throw new Error(`publish failed: ${await grace.page.getByTestId('publish-error').textContent()}`) })
    ])
    assert.equal(await grace.page.getByLabel('Status').inputValue(), 'PUBLISHED')
    // the others see the status change (documentChanged)
    await ada.page.waitForFunction(() => document.querySelector('select[aria-label="Status"]')?.value === 'PUBLISHED')
    await grace.page.getByRole('button', { name: 'Unpublish' }).click()
    await grace.page.getByRole('button', { name: 'Publish', exact: true }).waitFor()
  })

  test('document list: filter, search, pagination; usable at tablet width', async () => {
    const ed = await person('Edith List', { viewport: { width: 820, height: 1100 } })
    await ed.signUp()
    for (let i = 1; i <= 23; i++) {
      await ed.gql('mutation($t: String!) { createDocument(input: { title: $t }) { id } }', { t: `Note ${String(i).padStart(2, '0')}` })
    }
    // a stale session cookie (say the server's secret changed) leads to the sign-in screen,
    // and signing in works despite it
    await ed.context.addCookies([{ name: 'vellum_session', value: 'stale.token.value', url: ed.server.httpUrl }])
    ed.expectHttpError('/graphql', 401) // `me` with the stale cookie
    ed.expectHttpError('/api/auth/login', 401) // the wrong password
    await ed.goto('/')
    await ed.page.getByRole('button', { name: 'Sign in' }).waitFor()
    await ed.page.getByLabel('Email').fill(ed.email)
    await ed.page.getByLabel('Password').fill('wrong password')
    await ed.page.getByRole('button', { name: 'Sign in' }).click()
    await ed.page.getByRole('alert').filter({ hasText: /invalid email or password/i }).waitFor()
    await ed.page.getByLabel('Password').fill(PASSWORD)
    await ed.page.getByRole('button', { name: 'Sign in' }).click()
    await ed.page.locator('table.docs tbody tr').nth(19).waitFor()
    assert.equal(await ed.page.locator('table.docs tbody tr').count(), 20)
    await ed.page.getByRole('button', { name: 'Load more' }).click()
    await ed.page.locator('table.docs tbody tr').nth(22).waitFor()
    await ed.page.keyboard.press('Control+k')
    assert.equal(await ed.page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Search documents')
    await ed.page.keyboard.type('note 07')
    await ed.page.waitForFunction(() => document.querySelectorAll('table.docs tbody tr').length === 1)
    await ed.page.getByRole('tab', { name: 'Published' }).click()
    await ed.page.getByText('No published documents.').waitFor()
    const overflow = await ed.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth)
    assert.equal(overflow, false, 'no horizontal scrolling at tablet width')
    await screenshot(ed.page, 'document-list-tablet.png')
  })
})
