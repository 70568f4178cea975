import { describe, expect, it } from 'vitest'
import { actionFor, displayKeys, matches } from './shortcuts'
import { ApiError, describeError, errorField, fieldMessage, fromGraphQLError, pluginNotice } from './errors'
import { colorFor, initials, participants, typingLine } from './presence'
import { matchesSearch, mergePage, relativeTime } from './docList'
import { parseRoute } from './router'
import type { DocMeta } from './api'

const key = (k: string, mods: Partial<{ ctrl: boolean, meta: boolean, shift: boolean, alt: boolean }> = {}) =>
  ({ key: k, ctrlKey: !!mods.ctrl, metaKey: !!mods.meta, shiftKey: !!mods.shift, altKey: !!mods.alt })

describe('shortcuts', () => {
  it('Mod is Ctrl elsewhere and Cmd on a Mac', () => {
    expect(matches('Mod+S', key('s', { ctrl: true }), false)).toBe(true)
    expect(matches('Mod+S', key('s', { meta: true }), false)).toBe(false)
    expect(matches('Mod+S', key('s', { meta: true }), true)).toBe(true)
    expect(matches('Mod+S', key('s', { ctrl: true, shift: true }), false)).toBe(false)
  })
  it('maps keys to actions by screen', () => {
    expect(actionFor(key('P', { ctrl: true, shift: true }), false, 'editor')).toBe('publish')
    expect(actionFor(key('k', { ctrl: true }), false, 'list')).toBe('search')
    expect(actionFor(key('s', { ctrl: true }), false, 'list')).toBeNull()
    expect(actionFor(key('?', { shift: true }), false, 'list')).toBe('help')
    expect(actionFor(key('/'), false, 'editor')).toBe('searchAll')
  })
  it('takes symbols typed with or without Shift, and not with Ctrl', () => {
    expect(matches('/', key('/'), false)).toBe(true)
    expect(matches('/', key('/', { shift: true }), false)).toBe(true) // Shift+7 on a German layout
    expect(matches('/', key('/', { ctrl: true }), false)).toBe(false)
    expect(matches('/', key('7', { shift: true }), false)).toBe(false)
    expect(matches('Mod+K', key('k', { ctrl: true, shift: true }), false)).toBe(false)
  })
  it('shows keys the platform’s way', () => {
    expect(displayKeys('Mod+Shift+P', true)).toBe('⌘⇧P')
    expect(displayKeys('Mod+Shift+P', false)).toBe('Ctrl+Shift+P')
  })
})

describe('errors', () => {
  it('maps extensions.code to a message', () => {
    const e = fromGraphQLError({ message: 'authors cannot publish', extensions: { code: 'FORBIDDEN' } })
    expect(e.code).toBe('FORBIDDEN')
    expect(e.message).toBe('Not allowed: authors cannot publish')
    expect(fromGraphQLError({ message: 'x' }).code).toBe('INTERNAL')
    expect(fromGraphQLError({ message: 'x', extensions: { code: 'WAT' } }).code).toBe('INTERNAL')
    expect(describeError('VALIDATION', 'too long', 'input.displayName')).toBe('Display name: too long')
    expect(describeError('NOT_FOUND', '')).toMatch(/Not found/)
    expect(fromGraphQLError({ message: 'too many sign-ins at once', extensions: { code: 'BUSY' } }).message).toMatch(/busy/)
    const locked = fromGraphQLError({ message: 'too many sign-in attempts for this email; try again in 300 seconds', extensions: { code: 'RATE_LIMITED' } })
    expect(locked.code).toBe('RATE_LIMITED')
    expect(locked.message).toBe('Too many sign-in attempts for this email; try again in 300 seconds.')
  })
})

describe('plugin errors', () => {
  // as the server sends them (src/error.rs): the message is "<plugin>: <message>"
  const rejected = fromGraphQLError({
    message: 'banned-words: paragraph 1 contains “frobnicate”, which may not be published',
    extensions: { code: 'PLUGIN_REJECTED', plugin: 'banned-words', reason: 'banned-word', pluginMessage: 'paragraph 1 contains “frobnicate”, which may not be published', field: 'body' }
  })
  const failed = fromGraphQLError({
    message: 'plugin word-count failed (out-of-fuel); the change was not made',
    extensions: { code: 'PLUGIN_FAILED', plugin: 'word-count', kind: 'out-of-fuel' }
  })
  it('keeps what the plugin said', () => {
    expect(rejected.code).toBe('PLUGIN_REJECTED')
    expect(rejected.plugin).toEqual({ plugin: 'banned-words', pluginMessage: 'paragraph 1 contains “frobnicate”, which may not be published', reason: 'banned-word', kind: undefined })
    expect(rejected.field).toBe('body')
    expect(rejected.message).toBe('Plugin banned-words refused this: Paragraph 1 contains “frobnicate”, which may not be published.')
    expect(failed.code).toBe('PLUGIN_FAILED')
    expect(failed.message).toBe('Plugin word-count failed (out-of-fuel); nothing was saved.')
    expect(fromGraphQLError({ message: 'x', extensions: { code: 'PLUGIN_FAILED' } }).message).toBe('A plugin failed; nothing was saved.')
    // a refusal about no field in particular
    expect(fromGraphQLError({ message: 'p: no', extensions: { code: 'PLUGIN_REJECTED', plugin: 'p', pluginMessage: 'no', field: null } }).field).toBeUndefined()
    // plugin details only on plugin errors
    expect(fromGraphQLError({ message: 'x', extensions: { code: 'FORBIDDEN', plugin: 'p' } }).plugin).toBeUndefined()
  })
  it('says in place what did not happen and which plugin refused', () => {
    expect(pluginNotice(rejected, 'publish')).toEqual({
      kind: 'rejected',
      plugin: 'banned-words',
      headline: 'Not published: the plugin banned-words refused it.',
      detail: 'Paragraph 1 contains “frobnicate”, which may not be published.',
      reason: 'banned-word',
      field: 'body'
    })
    expect(pluginNotice(rejected, 'saveVersion')?.headline).toBe('Version not saved: the plugin banned-words refused it.')
    expect(pluginNotice(failed, 'saveVersion')).toMatchObject({ kind: 'failed', plugin: 'word-count', headline: 'Plugin word-count failed (out-of-fuel); nothing was saved.' })
    // without pluginMessage: the server's message without the plugin's name
    const bare = fromGraphQLError({ message: 'slugify: slug is reserved', extensions: { code: 'PLUGIN_REJECTED', plugin: 'slugify', field: 'slug' } })
    expect(pluginNotice(bare, 'metadata')?.detail).toBe('Slug is reserved.')
    expect(pluginNotice(new ApiError('FORBIDDEN', 'no'), 'publish')).toBeNull()
    expect(pluginNotice(new Error('x'), 'publish')).toBeNull()
  })
  it('finds the input an error is about', () => {
    const title = fromGraphQLError({ message: 'house-style: titles end without a full stop', extensions: { code: 'PLUGIN_REJECTED', plugin: 'house-style', pluginMessage: 'titles end without a full stop', field: 'title' } })
    expect(errorField(title, ['title', 'slug'])).toBe('title')
    expect(fieldMessage(title)).toBe('house-style: titles end without a full stop')
    expect(errorField(rejected, ['title', 'slug'])).toBeNull()
    const taken = fromGraphQLError({ message: 'slug: already used by another document', extensions: { code: 'VALIDATION', field: 'slug' } })
    expect(errorField(taken, ['title', 'slug'])).toBe('slug')
    expect(fieldMessage(taken)).toBe('already used by another document')
    expect(taken.message).toBe('Slug: already used by another document')
    const setting = fromGraphQLError({ message: 'config.words: `words` must be an array of strings', extensions: { code: 'VALIDATION', field: 'config.words' } })
    expect(errorField(setting, ['words', 'other'], 'config.')).toBe('words')
    expect(errorField(setting, ['words'])).toBeNull()
    expect(fieldMessage(setting)).toBe('`words` must be an array of strings')
    expect(errorField(new ApiError('CONFLICT', 'x', { field: 'title' }), ['title'])).toBeNull()
  })
})

describe('presence', () => {
  it('gives stable colours and initials', () => {
    expect(colorFor('abc')).toBe(colorFor('abc'))
    expect(initials('Ada Lovelace')).toBe('AL')
    expect(initials('ada')).toBe('AD')
    expect(initials('  ')).toBe('?')
  })
  it('lists each person once, self first, and who is typing', () => {
    const states = new Map<number, Record<string, unknown>>([
      [1, { user: { id: 'me', name: 'Me', color: '#000' } }],
      [2, { user: { id: 'b', name: 'Bob', typing: true } }],
      [3, { user: { id: 'b', name: 'Bob' } }],
      [4, { user: { id: 'a', name: 'Ada', typing: true } }],
      [5, {}]
    ])
    const p = participants(states, 1, 'me')
    expect(p.map((x) => x.name)).toEqual(['Me', 'Ada', 'Bob'])
    expect(p.find((x) => x.name === 'Bob')?.connections).toBe(2)
    expect(typingLine(p)).toBe('Ada and Bob are typing…')
    expect(typingLine(p.slice(0, 1))).toBe('')
  })
})

describe('document list', () => {
  const doc = (id: string, title: string): DocMeta => ({ id, title, slug: title.toLowerCase().replace(/ /g, '-'), status: 'DRAFT', lockVersion: 1, updatedAt: '', createdAt: '' })
  it('searches titles and slugs by every word', () => {
    expect(matchesSearch(doc('1', 'Launch Notes'), 'notes launch')).toBe(true)
    expect(matchesSearch(doc('1', 'Launch Notes'), 'launch-notes')).toBe(true)
    expect(matchesSearch(doc('1', 'Launch Notes'), 'draft')).toBe(false)
    expect(matchesSearch(doc('1', 'x'), '  ')).toBe(true)
  })
  it('appends pages without duplicates', () => {
    expect(mergePage([doc('1', 'a'), doc('2', 'b')], [doc('2', 'b'), doc('3', 'c')]).map((d) => d.id)).toEqual(['1', '2', '3'])
  })
  it('formats times relative to now', () => {
    const now = Date.parse('2026-01-10T12:00:00Z')
    expect(relativeTime('2026-01-10T11:59:50Z', now)).toBe('just now')
    expect(relativeTime('2026-01-10T11:50:00Z', now)).toBe('10 min ago')
    expect(relativeTime('2026-01-10T09:00:00Z', now)).toBe('3 h ago')
    expect(relativeTime('nope', now)).toBe('')
  })
  it('routes', () => {
    expect(parseRoute('/')).toEqual({ name: 'list' })
    expect(parseRoute('/documents/abc')).toEqual({ name: 'editor', id: 'abc', version: null })
    expect(parseRoute('/documents/abc?version=3')).toEqual({ name: 'editor', id: 'abc', version: 3 })
    expect(parseRoute('/documents/abc?version=0')).toEqual({ name: 'editor', id: 'abc', version: null })
    expect(parseRoute('/documents/abc?version=x')).toEqual({ name: 'editor', id: 'abc', version: null })
    expect(parseRoute('/search')).toEqual({ name: 'search', query: '' })
    expect(parseRoute('/search?q=launch&scope=live')).toEqual({ name: 'search', query: '?q=launch&scope=live' })
    expect(parseRoute('/plugins?x=1')).toEqual({ name: 'plugins' })
    expect(parseRoute('/signin')).toEqual({ name: 'signin' })
    expect(parseRoute('/plugins')).toEqual({ name: 'plugins' })
    expect(parseRoute('/elsewhere')).toEqual({ name: 'notFound' })
  })
})
