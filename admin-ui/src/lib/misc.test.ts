import { describe, expect, it } from 'vitest'
import { actionFor, displayKeys, matches } from './shortcuts'
import { describeError, fromGraphQLError } from './errors'
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
    expect(parseRoute('/documents/abc')).toEqual({ name: 'editor', id: 'abc' })
    expect(parseRoute('/signin')).toEqual({ name: 'signin' })
    expect(parseRoute('/elsewhere')).toEqual({ name: 'notFound' })
  })
})
