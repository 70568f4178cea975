// Random edits of the two shared types the tests use: Y.Text 't' and Y.XmlFragment 'default'
// (paragraph elements holding Y.XmlText, as ProseMirror/Tiptap bindings do).

import * as Y from 'yjs'
import { delay } from './wait.mjs'

/** Insert a paragraph holding `text` at `index` of the fragment. */
export function insertParagraph (fragment, index, text) {
  const p = new Y.XmlElement('paragraph')
  const t = new Y.XmlText()
  t.insert(0, text)
  p.insert(0, [t])
  fragment.insert(index, [p])
  return p
}

/** One random edit of `doc`, in one transaction. */
export function randomEdit (doc, rng) {
  const text = doc.getText('t')
  const frag = doc.getXmlFragment('default')
  const r = rng.next()
  doc.transact(() => {
    if (r < 0.40 || (r < 0.55 && text.length === 0)) {
      text.insert(rng.int(0, text.length), rng.word() + (rng.bool(0.3) ? ' ' : ''))
    } else if (r < 0.55) {
      const at = rng.int(0, text.length - 1)
      text.delete(at, Math.min(rng.int(1, 4), text.length - at))
    } else if (r < 0.75 || frag.length === 0) {
      insertParagraph(frag, rng.int(0, frag.length), rng.word(1, 8))
    } else {
      const p = frag.get(rng.int(0, frag.length - 1))
      const t = p instanceof Y.XmlElement ? p.get(0) : null
      if (!(t instanceof Y.XmlText)) return
      const r2 = rng.next()
      if (r2 < 0.45) {
        t.insert(rng.int(0, t.length), rng.word())
      } else if (r2 < 0.6 && t.length > 0) {
        const at = rng.int(0, t.length - 1)
        t.delete(at, Math.min(rng.int(1, 3), t.length - at))
      } else if (r2 < 0.75 && t.length > 0) {
        const at = rng.int(0, t.length - 1)
        t.format(at, Math.min(rng.int(1, 3), t.length - at), { bold: rng.bool() ? true : null })
      } else if (r2 < 0.85) {
        p.setAttribute('align', rng.pick(['left', 'center', 'right']))
      } else if (frag.length > 1) {
        frag.delete(frag.toArray().indexOf(p), 1)
      }
    }
  })
}

/**
 * `count` random edits, yielding to the event loop now and then (a random 0–`maxPauseMs` ms
 * pause) so that edits of concurrent clients interleave with messages from the server.
 */
export async function randomEdits (doc, rng, count, { maxPauseMs = 4 } = {}) {
  for (let i = 0; i < count; i++) {
    randomEdit(doc, rng)
    if (rng.bool(0.3)) await delay(rng.int(0, maxPauseMs))
  }
}
