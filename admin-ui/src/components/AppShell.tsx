import { useEffect, useState, type ReactNode } from 'react'
import type { User } from '../lib/api'
import { navigate } from '../lib/router'
import { isMac, isTyping, matches } from '../lib/shortcuts'
import { colorFor, initials } from '../lib/presence'
import { ShortcutHelp } from './ShortcutHelp'

export function AppShell ({ user, onSignOut, wide, children }: { user: User, onSignOut: () => void, wide: boolean, children: ReactNode }) {
  const [menu, setMenu] = useState(false)
  const go = (path: string) => (e: React.MouseEvent) => { e.preventDefault(); navigate(path) }
  const here = location.pathname
  // `/` anywhere but in a text field opens Search (on the Search page, it focuses the query box)
  useEffect(() => {
    const mac = isMac()
    const onKey = (e: KeyboardEvent) => {
      if (isTyping(e.target) || !matches('/', e, mac) || location.pathname === '/search') return
      e.preventDefault()
      navigate('/search')
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [])
  return (
    <div className="shell">
      <header className="topbar">
        <a className="brand" href="/" onClick={go('/')}>
          <img src="/favicon.svg" alt="" width="22" height="22" /> Vellum
        </a>
        <nav className="mainnav" aria-label="Main">
          <a href="/" onClick={go('/')} aria-current={here === '/' ? 'page' : undefined}>Documents</a>
          <a href="/search" onClick={go('/search')} aria-current={here === '/search' ? 'page' : undefined} aria-keyshortcuts="/">Search</a>
          {user.role === 'ADMIN' && <a href="/plugins" onClick={go('/plugins')} aria-current={here === '/plugins' ? 'page' : undefined}>Plugins</a>}
        </nav>
        <div className="topbar-right">
          <ShortcutHelp />
          <div className="usermenu">
            <button className="avatar-btn" aria-haspopup="menu" aria-expanded={menu} onClick={() => setMenu(!menu)} title={user.displayName}>
              <span className="avatar" style={{ background: colorFor(user.id) }}>{initials(user.displayName)}</span>
              <span className="username">{user.displayName}</span>
            </button>
            {menu && (
              <div className="menu" role="menu" onMouseLeave={() => setMenu(false)}>
                <div className="menu-info">{user.email}<br /><span className="muted">{user.role.toLowerCase()}</span></div>
                <button role="menuitem" onClick={onSignOut}>Sign out</button>
              </div>
            )}
          </div>
        </div>
      </header>
      <main className={wide ? 'main wide' : 'main'}>{children}</main>
    </div>
  )
}
