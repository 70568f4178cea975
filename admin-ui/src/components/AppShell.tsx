import { useState, type ReactNode } from 'react'
import type { User } from '../lib/api'
import { navigate } from '../lib/router'
import { colorFor, initials } from '../lib/presence'
import { ShortcutHelp } from './ShortcutHelp'

export function AppShell ({ user, onSignOut, wide, children }: { user: User, onSignOut: () => void, wide: boolean, children: ReactNode }) {
  const [menu, setMenu] = useState(false)
  const go = (path: string) => (e: React.MouseEvent) => { e.preventDefault(); navigate(path) }
  return (
    <div className="shell">
      <header className="topbar">
        <a className="brand" href="/" onClick={go('/')}>
          <img src="/favicon.svg" alt="" width="22" height="22" /> Vellum
        </a>
        <nav className="mainnav" aria-label="Main">
          <a href="/" onClick={go('/')} aria-current={location.pathname === '/' ? 'page' : undefined}>Documents</a>
          <span className="nav-soon" title="Search over history is coming">History search</span>
          {user.role === 'ADMIN' && <a href="/plugins" onClick={go('/plugins')} aria-current={location.pathname === '/plugins' ? 'page' : undefined}>Plugins</a>}
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
