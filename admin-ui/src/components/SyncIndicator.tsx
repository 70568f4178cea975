import { syncView, type SyncFacts } from '../lib/syncState'

export function SyncIndicator ({ facts }: { facts: SyncFacts }) {
  const v = syncView(facts)
  return (
    <div className={`sync sync-${v.state}`} role="status" aria-live="polite" title={v.detail} data-state={v.state} data-unsent={facts.unsent} data-local-pending={facts.localPending ?? 0}>
      <span className="dot" aria-hidden="true" />
      <span className="sync-label">{v.label}</span>
      {v.state === 'damaged' && <span className="sync-detail">{v.detail}</span>}
    </div>
  )
}
