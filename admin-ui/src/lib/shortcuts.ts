// Keyboard shortcuts: one table, used by the key handler and by the help popover.

export type Action = 'saveVersion' | 'publish' | 'search' | 'searchAll' | 'history' | 'share' | 'help' | 'newDocument'

export interface Shortcut { action: Action, keys: string, description: string, scope: 'editor' | 'list' | 'global' }

export const SHORTCUTS: Shortcut[] = [
  { action: 'saveVersion', keys: 'Mod+S', description: 'Save a named version', scope: 'editor' },
  { action: 'publish', keys: 'Mod+Shift+P', description: 'Publish the document', scope: 'editor' },
  { action: 'history', keys: 'Mod+Shift+H', description: 'Show or hide history', scope: 'editor' },
  { action: 'share', keys: 'Mod+Shift+S', description: 'Share the document', scope: 'editor' },
  { action: 'search', keys: 'Mod+K', description: 'Search documents', scope: 'global' },
  { action: 'searchAll', keys: '/', description: 'Search text and history', scope: 'global' },
  { action: 'newDocument', keys: 'Mod+Alt+N', description: 'New document', scope: 'list' },
  { action: 'help', keys: 'Shift+?', description: 'Show keyboard shortcuts', scope: 'global' }
]

export interface KeyLike { key: string, ctrlKey: boolean, metaKey: boolean, shiftKey: boolean, altKey: boolean }

/** Whether `e` is the combination `keys` ("Mod" is Cmd on a Mac, Ctrl elsewhere). */
export function matches (keys: string, e: KeyLike, mac: boolean): boolean {
  const parts = keys.split('+')
  const key = parts.pop()!.toLowerCase()
  const want = new Set(parts.map((p) => p.toLowerCase()))
  const mod = mac ? e.metaKey : e.ctrlKey
  const otherMod = mac ? e.ctrlKey : e.metaKey
  if (want.has('mod') !== mod || otherMod) return false
  if (want.has('alt') !== e.altKey) return false
  // symbols such as '?' and '/' are typed with Shift on many layouts: allow it either way
  if (!isSymbol(key) && want.has('shift') !== e.shiftKey) return false
  let got = e.key.toLowerCase()
  // with Alt held, macOS reports composed characters; fall back to the plain letter
  if (e.altKey && got.length === 1 && !/[a-z0-9?/]/.test(got)) got = ''
  return got === key
}

const isSymbol = (key: string): boolean => key.length === 1 && !/[a-z0-9]/.test(key)

/** Whether a key press goes into a text field or the editor (single-key shortcuts must not fire then). */
export function isTyping (target: EventTarget | null): boolean {
  const t = target as HTMLElement | null
  return Boolean(t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName)))
}

export function actionFor (e: KeyLike, mac: boolean, scope: 'editor' | 'list'): Action | null {
  for (const s of SHORTCUTS) {
    if (s.scope !== 'global' && s.scope !== scope) continue
    if (matches(s.keys, e, mac)) return s.action
  }
  return null
}

/** "Mod+Shift+P" as shown to a person: ⌘⇧P on a Mac, Ctrl+Shift+P elsewhere. */
export function displayKeys (keys: string, mac: boolean): string {
  const parts = keys.split('+')
  if (mac) {
    const sym: Record<string, string> = { Mod: '⌘', Shift: '⇧', Alt: '⌥' }
    return parts.map((p) => sym[p] ?? p.toUpperCase()).join('')
  }
  return parts.map((p) => (p === 'Mod' ? 'Ctrl' : p)).join('+')
}

export const isMac = (): boolean => typeof navigator !== 'undefined' && /Mac|iPhone|iPad/.test(navigator.platform)
