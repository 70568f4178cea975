import { useEffect, useState } from 'react'
import type { Awareness } from 'y-protocols/awareness'
import { initials, participants, typingLine, type Participant } from '../lib/presence'

/** Who is in the document (from awareness), with their colours, and who is typing. */
export function PresenceBar ({ awareness, selfUserId }: { awareness: Awareness, selfUserId: string }) {
  const [people, setPeople] = useState<Participant[]>([])
  useEffect(() => {
    const update = () => setPeople(participants(awareness.getStates() as Map<number, Record<string, unknown>>, awareness.clientID, selfUserId))
    update()
    awareness.on('change', update)
    return () => { awareness.off('change', update) }
  }, [awareness, selfUserId])
  const typing = typingLine(people)
  return (
    <div className="presence" aria-label="People in this document">
      <ul className="avatars">
        {people.map((p) => (
          <li key={p.key} className={p.typing ? 'typing' : undefined} title={`${p.name}${p.self ? ' (you)' : ''}${p.typing ? ' — typing' : ''}`} data-name={p.name}>
            <span className="avatar" style={{ background: p.color, boxShadow: `0 0 0 2px #fff, 0 0 0 4px ${p.color}` }}>{initials(p.name)}</span>
            <span className="presence-name">{p.self ? `${p.name} (you)` : p.name}</span>
          </li>
        ))}
      </ul>
      <span className="typing-line" aria-live="polite">{typing}</span>
    </div>
  )
}
