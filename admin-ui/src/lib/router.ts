// A tiny history-API router: four screens do not need a routing library.

import { useSyncExternalStore } from 'react'

export type Route =
  | { name: 'list' }
  | { name: 'signin' }
  | { name: 'editor', id: string }
  | { name: 'plugins' }
  | { name: 'notFound' }

export function parseRoute (path: string): Route {
  if (path === '/' || path === '/documents' || path === '/documents/') return { name: 'list' }
  if (path === '/signin') return { name: 'signin' }
  if (path === '/plugins' || path === '/plugins/') return { name: 'plugins' }
  const m = /^\/documents\/([^/]+)\/?$/.exec(path)
  if (m) return { name: 'editor', id: decodeURIComponent(m[1]) }
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

export function useLocation (): string {
  return useSyncExternalStore(
    (fn) => { listeners.add(fn); return () => { listeners.delete(fn) } },
    () => location.pathname
  )
}
