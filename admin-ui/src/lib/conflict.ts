// Metadata (title, slug, status) is last-write-wins with optimistic locking: a save names the
// lockVersion it read, and a stale one comes back as CONFLICT with the document as it is
// now. Nothing is overwritten silently: the user sees both values and chooses.

import type { DocMeta, DocStatus } from './api'

export type MetaField = 'title' | 'slug' | 'status'
export interface MetaEdit { title?: string, slug?: string, status?: DocStatus }

export interface FieldConflict { field: MetaField, mine: string, theirs: string }

/** The fields where my unsaved edit and the server's current value differ. */
export function conflictFields (edit: MetaEdit, current: Pick<DocMeta, 'title' | 'status'> & { slug?: string }): FieldConflict[] {
  const out: FieldConflict[] = []
  if (edit.title !== undefined && edit.title !== current.title) out.push({ field: 'title', mine: edit.title, theirs: current.title })
  if (edit.slug !== undefined && edit.slug !== (current.slug ?? '')) out.push({ field: 'slug', mine: edit.slug, theirs: current.slug ?? '' })
  if (edit.status !== undefined && edit.status !== current.status) out.push({ field: 'status', mine: edit.status, theirs: current.status })
  return out
}

export type Choice = 'mine' | 'theirs'

/**
 * After the user chose per field: the edit to retry (against the current lockVersion),
 * or null when nothing of mine is left to save.
 */
export function resolveConflict (conflicts: FieldConflict[], choices: Partial<Record<MetaField, Choice>>): MetaEdit | null {
  const edit: MetaEdit = {}
  for (const c of conflicts) {
    if ((choices[c.field] ?? 'theirs') !== 'mine') continue
    if (c.field === 'title') edit.title = c.mine
    else if (c.field === 'slug') edit.slug = c.mine
    else edit.status = c.mine as DocStatus
  }
  return Object.keys(edit).length > 0 ? edit : null
}

/** Parse `extensions.current` of a CONFLICT error into the fields the UI needs. */
export function currentFromConflict (current: unknown): DocMeta | null {
  if (!current || typeof current !== 'object') return null
  const c = current as Record<string, unknown>
  const lock = c.lockVersion ?? c.lock_version
  const status = typeof c.status === 'string' ? c.status.toUpperCase() : undefined
  if (typeof c.title !== 'string' || typeof lock !== 'number') return null
  return {
    id: String(c.id ?? ''),
    title: c.title,
    slug: String(c.slug ?? ''),
    status: (status ?? 'DRAFT') as DocStatus,
    lockVersion: lock,
    updatedAt: String(c.updatedAt ?? c.updated_at ?? ''),
    createdAt: String(c.createdAt ?? c.created_at ?? '')
  }
}
