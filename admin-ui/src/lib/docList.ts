// The document list's client-side search: the server filters by status and pages; the
// search box narrows what is loaded by title and slug (full-text search over every
// version and live draft is the Search page, src/screens/SearchScreen.tsx).

import type { DocMeta } from './api'

export function matchesSearch (doc: Pick<DocMeta, 'title' | 'slug'>, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean)
  if (words.length === 0) return true
  const hay = `${doc.title} ${doc.slug}`.toLowerCase()
  return words.every((w) => hay.includes(w))
}

/** Append a page, dropping documents already listed (a document edited meanwhile moves). */
export function mergePage (existing: DocMeta[], page: DocMeta[]): DocMeta[] {
  const seen = new Set(existing.map((d) => d.id))
  return [...existing, ...page.filter((d) => !seen.has(d.id))]
}

export function relativeTime (iso: string, now: number = Date.now()): string {
  const t = Date.parse(iso)
  if (Number.isNaN(t)) return ''
  const s = Math.round((now - t) / 1000)
  if (s < 45) return 'just now'
  const m = Math.round(s / 60)
  if (m < 60) return `${m} min ago`
  const h = Math.round(m / 60)
  if (h < 24) return `${h} h ago`
  const d = Math.round(h / 24)
  if (d < 7) return `${d} d ago`
  return new Date(t).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' })
}
