import { useEffect, useRef, useState } from 'react'
import { SHORTCUTS, displayKeys, isMac, isTyping, matches } from '../lib/shortcuts'

/** The "?" button and popover listing every keyboard shortcut (Shift+? opens it too). */
export function ShortcutHelp () {
  const [open, setOpen] = useState(false)
  const ref = useRef<HTMLDivElement>(null)
  const mac = isMac()
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') setOpen(false)
      else if (!isTyping(e.target) && matches('Shift+?', e, mac)) { e.preventDefault(); setOpen((o) => !o) }
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [mac])
  return (
    <div className="help" ref={ref}>
      <button className="icon-btn" aria-label="Keyboard shortcuts" aria-expanded={open} onClick={() => setOpen(!open)}>?</button>
      {open && (
        <div className="popover" role="dialog" aria-label="Keyboard shortcuts">
          <h3>Keyboard shortcuts</h3>
          <table>
            <tbody>
              {SHORTCUTS.map((s) => (
                <tr key={s.action}><td><kbd>{displayKeys(s.keys, mac)}</kbd></td><td>{s.description}</td></tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  )
}
