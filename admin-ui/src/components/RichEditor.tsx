import { useEffect } from 'react'
import { EditorContent, useEditor, useEditorState } from '@tiptap/react'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'
import type { CollabSession } from '../lib/collab'

export function RichEditor ({ session, readOnly }: { session: CollabSession, readOnly: boolean }) {
  const editor = useEditor({
    extensions: [
      StarterKit.configure({ undoRedo: false }),
      Collaboration.configure({ document: session.doc, field: 'default' }),
      CollaborationCaret.configure({ provider: session.provider, user: session.provider.awareness.getLocalState()?.user ?? { name: session.user.name, color: session.user.color } })
    ],
    editable: !readOnly,
    editorProps: { attributes: { class: 'prose', 'aria-label': 'Document body', spellcheck: 'true' } }
  }, [session])

  useEffect(() => {
    if (editor && editor.isEditable === readOnly) editor.setEditable(!readOnly)
  }, [editor, readOnly])

  const active = useEditorState({
    editor,
    selector: ({ editor: e }) => e
      ? { bold: e.isActive('bold'), italic: e.isActive('italic'), h2: e.isActive('heading', { level: 2 }), h3: e.isActive('heading', { level: 3 }), bullet: e.isActive('bulletList'), ordered: e.isActive('orderedList'), quote: e.isActive('blockquote') }
      : null
  })

  if (!editor) return null
  const btn = (label: string, title: string, on: boolean | undefined, run: () => void) => (
    <button type="button" title={title} aria-pressed={Boolean(on)} onMouseDown={(e) => e.preventDefault()} onClick={run} disabled={readOnly}>{label}</button>
  )
  return (
    <div className={readOnly ? 'rich readonly' : 'rich'}>
      {!readOnly && (
        <div className="toolbar" role="toolbar" aria-label="Formatting">
          {btn('B', 'Bold (Ctrl+B)', active?.bold, () => editor.chain().focus().toggleBold().run())}
          {btn('I', 'Italic (Ctrl+I)', active?.italic, () => editor.chain().focus().toggleItalic().run())}
          {btn('H2', 'Heading', active?.h2, () => editor.chain().focus().toggleHeading({ level: 2 }).run())}
          {btn('H3', 'Subheading', active?.h3, () => editor.chain().focus().toggleHeading({ level: 3 }).run())}
          {btn('• List', 'Bulleted list', active?.bullet, () => editor.chain().focus().toggleBulletList().run())}
          {btn('1. List', 'Numbered list', active?.ordered, () => editor.chain().focus().toggleOrderedList().run())}
          {btn('❝', 'Quote', active?.quote, () => editor.chain().focus().toggleBlockquote().run())}
        </div>
      )}
      <EditorContent editor={editor} />
    </div>
  )
}
