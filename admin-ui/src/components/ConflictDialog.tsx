import { useState } from 'react'
import { STATUS_LABEL, type DocStatus } from '../lib/api'
import type { Choice, FieldConflict, MetaField } from '../lib/conflict'
import { Modal } from './Modal'

const show = (c: FieldConflict, v: string) => (c.field === 'status' ? STATUS_LABEL[v as DocStatus] ?? v : v || '(empty)')
const LEGEND: Record<MetaField, string> = { title: 'Title', slug: 'Slug', status: 'Status' }

/** Someone saved the same field first: show both values; the user picks per field. */
export function ConflictDialog ({ conflicts, by, onResolve, onCancel }: {
  conflicts: FieldConflict[]
  by: string | null
  onResolve: (choices: Partial<Record<MetaField, Choice>>) => void
  onCancel: () => void
}) {
  const [choices, setChoices] = useState<Partial<Record<MetaField, Choice>>>({})
  return (
    <Modal title="Someone else changed this document" onClose={onCancel}>
      <p className="muted">{by ? `${by} saved` : 'Another change was saved'} while you were editing. Choose which value to keep.</p>
      {conflicts.map((c) => (
        <fieldset key={c.field} className="conflict">
          <legend>{LEGEND[c.field]}</legend>
          <label className={choices[c.field] === 'theirs' || !choices[c.field] ? 'choice picked' : 'choice'}>
            <input type="radio" name={c.field} checked={(choices[c.field] ?? 'theirs') === 'theirs'} onChange={() => setChoices({ ...choices, [c.field]: 'theirs' })} />
            <span>Theirs</span><strong data-testid={`theirs-${c.field}`}>{show(c, c.theirs)}</strong>
          </label>
          <label className={choices[c.field] === 'mine' ? 'choice picked' : 'choice'}>
            <input type="radio" name={c.field} checked={choices[c.field] === 'mine'} onChange={() => setChoices({ ...choices, [c.field]: 'mine' })} />
            <span>Yours</span><strong data-testid={`mine-${c.field}`}>{show(c, c.mine)}</strong>
          </label>
        </fieldset>
      ))}
      <div className="actions">
        <button className="primary" onClick={() => onResolve(choices)}>Apply</button>
      </div>
    </Modal>
  )
}
