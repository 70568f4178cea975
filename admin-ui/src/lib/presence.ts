// Presence: each user's colour, and who is in the document from awareness states.

const PALETTE = ['#e03131', '#2f9e44', '#1971c2', '#e8590c', '#9c36b5', '#0c8599', '#c2255c', '#a27c00']

export function colorFor (id: string): string {
  let h = 0
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0
  return PALETTE[h % PALETTE.length]
}

export function initials (name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean)
  if (words.length === 0) return '?'
  if (words.length === 1) return words[0].slice(0, 2).toUpperCase()
  return (words[0][0] + words[words.length - 1][0]).toUpperCase()
}

export interface AwarenessUser { id?: string, name?: string, color?: string, typing?: boolean }

export interface Participant { key: string, name: string, color: string, typing: boolean, self: boolean, connections: number }

/**
 * One entry per person (a person may have several tabs open), self first, then by name.
 * `states` is awareness.getStates(); `selfClient` is our own awareness clientID.
 */
export function participants (states: Map<number, Record<string, unknown>>, selfClient: number, selfUserId: string): Participant[] {
  const byKey = new Map<string, Participant>()
  for (const [client, state] of states) {
    const u = state.user as AwarenessUser | undefined
    if (!u?.name) continue
    const key = u.id ?? `client-${client}`
    const self = client === selfClient || key === selfUserId
    const prev = byKey.get(key)
    if (prev) {
      prev.connections++
      prev.typing = prev.typing || (!self && Boolean(u.typing))
      continue
    }
    byKey.set(key, { key, name: u.name, color: u.color ?? colorFor(key), typing: !self && Boolean(u.typing), self, connections: 1 })
  }
  return [...byKey.values()].sort((a, b) => (a.self === b.self ? a.name.localeCompare(b.name) : a.self ? -1 : 1))
}

/** "Ada is typing…", "Ada and Bob are typing…", "3 people are typing…", or ''. */
export function typingLine (people: Participant[]): string {
  const names = people.filter((p) => p.typing && !p.self).map((p) => p.name)
  if (names.length === 0) return ''
  if (names.length === 1) return `${names[0]} is typing…`
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`
  return `${names.length} people are typing…`
}
