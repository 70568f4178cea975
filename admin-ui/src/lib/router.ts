// A tiny history-API router: a handful of screens do not need a routing library. A route
// is read from the path and its query string (`/search?q=…`, `/documents/<id>?version=3`).

import { useSyncExternalStore } from 'react'

export type Route =
  | { name: 'list' }
  | { name: 'signin' }
  /** `version`: open the history sidebar on this version (its diff against the live text) */
  | { name: 'editor', id: string, version: number | null }
  | { name: 'plugins' }
  /** `query`: the query string (`?q=…`), read by the search page */
  | { name: 'search', query: string }
  | { name: 'notFound' }

/** The route of a path with its query string (`location.pathname + location.search`). */
export function parseRoute (url: string): Route {
  const q = url.indexOf('?')
  const path = q < 0 ? url : url.slice(0, q)
  const query = q < 0 ? '' : url.slice(q)
  if (path === '/' || path === '/documents' || path === '/documents/') return { name: 'list' }
  if (path === '/signin') return { name: 'signin' }
  if (path === '/plugins' || path === '/plugins/') return { name: 'plugins' }
  if (path === '/search' || path === '/search/') return { name: 'search', query }
  const m = /^\/documents\/([^/]+)\/?$/.exec(path)
  if (m) {
    const v = new URLSearchParams(query).get('version')
    const version = v && /^[1-9]\d*$/.test(v) ? Number(v) : null
    return { name: 'editor', id: decodeURIComponent(m[1]), version }
  }
  return { name: 'notFound' }
}

const listeners = new Set<() => void>()
const notify = () => { for (const fn of listeners) fn() }
if (typeof window !== 'undefined') window.addEventListener('popstate', notify)

export function navigate (path: string, { replace = false } = {}): void {
  if (path === location.pathname + location.search) return
  if (replace) history.replaceState(null, '', path)
  else history.pushState(null, '', path)
  notify()
}

/** The current path and query string; re-renders when either changes. */
export function useLocation (): string {
  return useSyncExternalStore(
    (fn) => { listeners.add(fn); return () => { listeners.delete(fn) } },
    () => location.pathname + location.search
  )
}
