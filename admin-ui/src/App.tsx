import { useCallback, useEffect, useState } from 'react'
import * as api from './lib/api'
import { setUnauthenticatedHandler, resetSubscriptions } from './lib/graphql'
import { navigate, parseRoute, useLocation } from './lib/router'
import { ApiError } from './lib/errors'
import { SignIn } from './screens/SignIn'
import { DocumentList } from './screens/DocumentList'
import { EditorScreen } from './screens/EditorScreen'
import { PluginsScreen } from './screens/PluginsScreen'
import { SearchScreen } from './screens/SearchScreen'
import { AppShell } from './components/AppShell'

const USER_KEY = 'vellum:user'

function cachedUser (): api.User | null {
  try {
    const raw = localStorage.getItem(USER_KEY)
    return raw ? JSON.parse(raw) as api.User : null
  } catch {
    return null
  }
}

export function App () {
  const path = useLocation()
  const route = parseRoute(path)
  // undefined: still asking the server who we are
  const [user, setUser] = useState<api.User | null | undefined>(undefined)

  const signedIn = useCallback((u: api.User | null) => {
    if (u) localStorage.setItem(USER_KEY, JSON.stringify(u))
    else localStorage.removeItem(USER_KEY)
    setUser(u)
  }, [])

  useEffect(() => {
    // Offline (a reload without network): trust the last known user; the server checks
    // the session again when the connection returns.
    if (!navigator.onLine) {
      setUser(cachedUser())
      return
    }
    api.me().then(signedIn).catch((e) => {
      if (e instanceof ApiError && e.code === 'NETWORK') setUser(cachedUser())
      else void api.logout().catch(() => {}).finally(() => signedIn(null))
    })
  }, [signedIn])

  useEffect(() => {
    // the session ended (expired, or the server's secret changed): clear the cookie
    setUnauthenticatedHandler(() => { void api.logout().catch(() => {}); signedIn(null) })
    return () => setUnauthenticatedHandler(null)
  }, [signedIn])

  useEffect(() => {
    if (user === null && route.name !== 'signin') navigate('/signin', { replace: true })
    if (user && route.name === 'signin') navigate('/', { replace: true })
  }, [user, route.name])

  const signOut = useCallback(async () => {
    try { await api.logout() } catch { /* the cookie is cleared either way when online */ }
    resetSubscriptions()
    signedIn(null)
  }, [signedIn])

  if (user === undefined) return <div className="boot" aria-busy="true">Loading…</div>
  if (user === null || route.name === 'signin') return <SignIn onSignedIn={signedIn} />

  return (
    <AppShell user={user} onSignOut={signOut} wide={route.name === 'editor'}>
      {route.name === 'list' && <DocumentList user={user} />}
      {route.name === 'editor' && <EditorScreen key={route.id} id={route.id} version={route.version} user={user} />}
      {route.name === 'plugins' && <PluginsScreen />}
      {route.name === 'search' && <SearchScreen user={user} query={route.query} />}
      {route.name === 'notFound' && (
        <div className="empty"><h2>Page not found</h2><p><a href="/" onClick={(e) => { e.preventDefault(); navigate('/') }}>Back to documents</a></p></div>
      )}
    </AppShell>
  )
}
