import { describe, expect, it } from 'vitest'
import { conflictFields, currentFromConflict, resolveConflict } from './conflict'

describe('metadata conflicts', () => {
  const current = { title: 'Theirs', status: 'IN_REVIEW' as const }
  it('lists only the fields where my edit and theirs differ', () => {
    expect(conflictFields({ title: 'Mine' }, current)).toEqual([{ field: 'title', mine: 'Mine', theirs: 'Theirs' }])
    expect(conflictFields({ title: 'Theirs' }, current)).toEqual([])
    expect(conflictFields({ title: 'Mine', status: 'ARCHIVED' }, current)).toHaveLength(2)
  })
  it('retries only the fields the user kept as theirs… or mine', () => {
    const c = conflictFields({ title: 'Mine', status: 'ARCHIVED' }, current)
    expect(resolveConflict(c, {})).toBeNull()
    expect(resolveConflict(c, { title: 'mine' })).toEqual({ title: 'Mine' })
    expect(resolveConflict(c, { title: 'mine', status: 'mine' })).toEqual({ title: 'Mine', status: 'ARCHIVED' })
  })
  it('treats the slug like the title', () => {
    const c = conflictFields({ slug: 'mine' }, { ...current, slug: 'theirs' })
    expect(c).toEqual([{ field: 'slug', mine: 'mine', theirs: 'theirs' }])
    expect(resolveConflict(c, { slug: 'mine' })).toEqual({ slug: 'mine' })
    expect(conflictFields({ slug: 'same' }, { ...current, slug: 'same' })).toEqual([])
  })
  it('reads extensions.current as the server sends it (camelCase, snake_case status)', () => {
    const d = currentFromConflict({ id: 'x', title: 'T', slug: 't', status: 'in_review', lockVersion: 4, updatedAt: 'u', createdAt: 'c' })
    expect(d).toMatchObject({ title: 'T', status: 'IN_REVIEW', lockVersion: 4 })
    expect(currentFromConflict(null)).toBeNull()
    expect(currentFromConflict({ title: 'T' })).toBeNull()
  })
})
