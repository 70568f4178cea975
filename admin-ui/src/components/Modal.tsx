import { useEffect, useRef, type ReactNode } from 'react'

/** A modal dialog: focus moves in, Escape closes, the page behind is inert. */
export function Modal ({ title, onClose, children, labelledBy }: { title: string, onClose: () => void, children: ReactNode, labelledBy?: string }) {
  const ref = useRef<HTMLDivElement>(null)
  useEffect(() => {
    const el = ref.current
    const first = el?.querySelector<HTMLElement>('[autofocus], input, select, textarea, button.primary, button')
    first?.focus()
    const onKey = (e: KeyboardEvent) => { if (e.key === 'Escape') { e.stopPropagation(); onClose() } }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [onClose])
  return (
    <div className="backdrop" onMouseDown={(e) => { if (e.target === e.currentTarget) onClose() }}>
      <div className="modal card" role="dialog" aria-modal="true" aria-label={labelledBy ? undefined : title} aria-labelledby={labelledBy} ref={ref}>
        <h2>{title}</h2>
        {children}
      </div>
    </div>
  )
}
