import { useSyncExternalStore } from 'react'

/** navigator.onLine, as React state. */
export function useOnline (): boolean {
  return useSyncExternalStore(
    (fn) => {
      window.addEventListener('online', fn)
      window.addEventListener('offline', fn)
      return () => { window.removeEventListener('online', fn); window.removeEventListener('offline', fn) }
    },
    () => navigator.onLine
  )
}
