import type { DiffPart } from '../lib/api'

/** An inline word diff: insertions underlined green, deletions struck red. */
export function DiffView ({ parts }: { parts: DiffPart[] }) {
  if (parts.length === 0) return <p className="muted">No text.</p>
  const changed = parts.some((p) => p.op !== 'EQUAL')
  return (
    <div className="diff" aria-label="Differences">
      {!changed && <p className="muted">No differences.</p>}
      {parts.map((p, i) =>
        p.op === 'INSERT'
          ? <ins key={i}>{p.text}</ins>
          : p.op === 'DELETE'
            ? <del key={i}>{p.text}</del>
            : <span key={i}>{p.text}</span>
      )}
    </div>
  )
}
