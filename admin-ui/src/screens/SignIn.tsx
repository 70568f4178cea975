import { useState } from 'react'
import * as api from '../lib/api'
import { ApiError, errorText } from '../lib/errors'

export function SignIn ({ onSignedIn }: { onSignedIn: (u: api.User) => void }) {
  const [mode, setMode] = useState<'signin' | 'register'>('signin')
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const [name, setName] = useState('')
  const [error, setError] = useState('')
  const [busy, setBusy] = useState(false)

  const submit = async (e: React.FormEvent) => {
    e.preventDefault()
    setBusy(true)
    setError('')
    try {
      const u = mode === 'signin' ? await api.login(email, password) : await api.register(email, password, name)
      onSignedIn(u)
    } catch (err) {
      setError(err instanceof ApiError && err.code === 'UNAUTHENTICATED' ? (err.serverMessage || 'Wrong email or password.') : errorText(err))
    } finally {
      setBusy(false)
    }
  }

  return (
    <div className="auth">
      <form className="card auth-card" onSubmit={submit} aria-label={mode === 'signin' ? 'Sign in' : 'Create account'}>
        <div className="auth-brand"><img src="/favicon.svg" alt="" width="32" height="32" /><h1>Vellum</h1></div>
        <div className="tabs" role="tablist">
          <button type="button" role="tab" aria-selected={mode === 'signin'} onClick={() => { setMode('signin'); setError('') }}>Sign in</button>
          <button type="button" role="tab" aria-selected={mode === 'register'} onClick={() => { setMode('register'); setError('') }}>Create account</button>
        </div>
        {mode === 'register' && (
          <label>Name<input name="displayName" autoComplete="name" required value={name} onChange={(e) => setName(e.target.value)} /></label>
        )}
        <label>Email<input name="email" type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} /></label>
        <label>Password<input name="password" type="password" autoComplete={mode === 'signin' ? 'current-password' : 'new-password'} required value={password} onChange={(e) => setPassword(e.target.value)} /></label>
        {error && <p className="error" role="alert">{error}</p>}
        <button className="primary" type="submit" disabled={busy}>{mode === 'signin' ? 'Sign in' : 'Create account'}</button>
      </form>
    </div>
  )
}
