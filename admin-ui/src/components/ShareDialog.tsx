import { useState } from 'react'
import * as api from '../lib/api'
import { errorText } from '../lib/errors'
import { Modal } from './Modal'

export function ShareDialog ({ docId, title, onClose }: { docId: string, title: string, onClose: () => void }) {
  const [email, setEmail] = useState('')
  const [role, setRole] = useState<api.Grant>('EDITOR')
  const [error, setError] = useState('')
  const [done, setDone] = useState('')
  const [busy, setBusy] = useState(false)
  const submit = async (e: React.FormEvent) => {
    e.preventDefault()
    setBusy(true)
    setError('')
    setDone('')
    try {
      await api.grantAccess(docId, email.trim(), role)
      setDone(role === 'NONE' ? `${email} no longer has access.` : `${email} can now ${role === 'EDITOR' ? 'edit' : 'view'} “${title}”.`)
      setEmail('')
    } catch (err) {
      setError(errorText(err))
    } finally {
      setBusy(false)
    }
  }
  return (
    <Modal title="Share" onClose={onClose}>
      <form className="share" onSubmit={submit}>
        <label>Email<input type="email" name="shareEmail" required value={email} onChange={(e) => setEmail(e.target.value)} placeholder="colleague@example.com" /></label>
        <label>Access
          <select name="shareRole" value={role} onChange={(e) => setRole(e.target.value as api.Grant)}>
            <option value="EDITOR">Can edit</option>
            <option value="VIEWER">Can view</option>
            <option value="NONE">Remove access</option>
          </select>
        </label>
        {error && <p className="error" role="alert">{error}</p>}
        {done && <p className="ok" role="status">{done}</p>}
        <div className="actions">
          <button type="button" onClick={onClose}>Close</button>
          <button className="primary" type="submit" disabled={busy}>Share</button>
        </div>
      </form>
    </Modal>
  )
}
