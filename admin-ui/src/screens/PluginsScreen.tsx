import { useCallback, useEffect, useId, useState } from 'react'
import * as api from '../lib/api'
import { ApiError, errorField, errorText, fieldMessage } from '../lib/errors'
import {
  CAPABILITY_INFO, PLUGIN_STATUS_LABEL, configFromForm, formValues, formatCount, formatMs, hookName, placeholderFor,
  type FormValue, type FormValues
} from '../lib/plugins'

/** Admins: every plugin this node knows, with its state, statistics, grants and settings. */
export function PluginsScreen () {
  const [plugins, setPlugins] = useState<api.Plugin[] | null>(null)
  const [loading, setLoading] = useState(true)
  const [error, setError] = useState('')
  const [unavailable, setUnavailable] = useState(false)

  const load = useCallback(async () => {
    setLoading(true)
    setError('')
    try {
      if (!(await api.capabilities()).plugins) { setUnavailable(true); return }
      setPlugins(await api.listPlugins())
    } catch (e) {
      setError(e instanceof ApiError && e.code === 'FORBIDDEN' ? 'Only admins manage plugins.' : errorText(e))
    } finally {
      setLoading(false)
    }
  }, [])

  useEffect(() => { void load() }, [load])

  // a mutation answers with the plugin as stored: its card shows that
  const replace = useCallback((p: api.Plugin) => {
    setPlugins((prev) => (prev ?? []).map((x) => (x.name === p.name ? p : x)))
  }, [])

  return (
    <section className="plugins">
      <div className="plugins-head">
        <h1>Plugins</h1>
        {!unavailable && <button onClick={() => void load()} disabled={loading} aria-busy={loading}>Refresh</button>}
      </div>
      <p className="muted plugins-intro">Content hooks that run in a sandbox on every save, publish and delivery. Changes apply to every node.</p>
      {unavailable && <p className="muted">Plugins are not available on this server yet.</p>}
      {error && <p className="error" role="alert">{error}</p>}
      {plugins && plugins.length === 0 && !error && <div className="empty"><p>No plugins are installed.</p></div>}
      {plugins && plugins.length > 0 && (
        <div className="plugin-list">
          {plugins.map((p) => <PluginCard key={p.name} plugin={p} onChange={replace} />)}
        </div>
      )}
      {loading && !plugins && <div className="empty" aria-busy="true">Loading…</div>}
    </section>
  )
}

function PluginCard ({ plugin: p, onChange }: { plugin: api.Plugin, onChange: (p: api.Plugin) => void }) {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState('')
  const id = useId()
  const loaded = p.status !== 'BROKEN'
  const enabled = p.status === 'ENABLED'

  const toggle = async () => {
    setBusy(true)
    setError('')
    try {
      onChange(await api.setPluginEnabled(p.name, !enabled))
    } catch (e) {
      setError(errorText(e))
    } finally {
      setBusy(false)
    }
  }

  return (
    <article className="plugin card" aria-labelledby={`${id}-name`} data-name={p.name} data-status={p.status}>
      <header className="plugin-head">
        <h2 id={`${id}-name`}>{p.name}</h2>
        {p.version && <span className="plugin-version">v{p.version}</span>}
        <span className={`badge plugin-status plugin-status-${p.status.toLowerCase()}`}>{PLUGIN_STATUS_LABEL[p.status] ?? p.status}</span>
        {loaded && (
          <button className={enabled ? 'plugin-toggle' : 'plugin-toggle primary'} onClick={() => void toggle()} disabled={busy} aria-describedby={`${id}-name`}>
            {enabled ? 'Disable' : 'Enable'}
          </button>
        )}
      </header>
      {p.description && <p className="plugin-description">{p.description}</p>}
      {error && <p className="error" role="alert">{error}</p>}
      {p.error && (
        <p className={loaded ? 'warn plugin-error' : 'error plugin-error'}>
          {loaded ? <><strong>Its newest files were refused</strong> (this version keeps running): </> : <><strong>Not loaded:</strong> </>}
          {p.error}
        </p>
      )}
      {p.disabledReason && <p className="warn plugin-disabled-reason"><strong>Turned off:</strong> {p.disabledReason}</p>}
      <div className="plugin-body">
        <dl className="plugin-facts">
          <div><dt>Source</dt><dd>{p.source ?? '—'}</dd></div>
          <div>
            <dt>Hooks</dt>
            <dd>{p.hooks.length > 0 ? <ul className="hooks">{p.hooks.map((h) => <li key={h}><code>{hookName(h)}</code></li>)}</ul> : '—'}</dd>
          </div>
          <div><dt>Priority</dt><dd>{p.priority ?? '—'}</dd></div>
          <div><dt>sha256</dt><dd>{p.sha256 ? <code title={p.sha256}>{p.sha256.slice(0, 12)}…</code> : '—'}</dd></div>
        </dl>
        <dl className="plugin-stats" aria-label={`Calls of ${p.name} on this node`}>
          <div><dt>Calls</dt><dd>{formatCount(p.calls)}</dd></div>
          <div><dt>Rejections</dt><dd>{formatCount(p.rejections)}</dd></div>
          <div><dt>Failures</dt><dd>{formatCount(p.failures)}</dd></div>
          <div><dt>p50</dt><dd>{formatMs(p.p50Ms)}</dd></div>
          <div><dt>p99</dt><dd>{formatMs(p.p99Ms)}</dd></div>
          <div><dt>Fuel used</dt><dd>{formatCount(p.fuelUsed)}</dd></div>
          <div className="wide"><dt>Last failure</dt><dd>{p.lastFailure ?? '—'}</dd></div>
        </dl>
      </div>
      {loaded && <GrantsForm plugin={p} onChange={onChange} />}
      {loaded && p.configSchema.length > 0 && <ConfigForm plugin={p} onChange={onChange} />}
    </article>
  )
}

const grantsKey = (caps: api.PluginCapability[]) => [...caps].sort().join(',')

/** The capabilities the manifest requests, as checkboxes (checked: granted). */
function GrantsForm ({ plugin: p, onChange }: { plugin: api.Plugin, onChange: (p: api.Plugin) => void }) {
  const stored = grantsKey(p.grantedCapabilities)
  const [base, setBase] = useState(stored)
  const [checked, setChecked] = useState<api.PluginCapability[]>(p.grantedCapabilities)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState('')
  const [done, setDone] = useState('')
  const id = useId()
  // the server's grants changed (saved here, or a refresh): start again from them
  if (stored !== base) {
    setBase(stored)
    setChecked(p.grantedCapabilities)
  }

  const submit = async (e: React.FormEvent) => {
    e.preventDefault()
    setBusy(true)
    setError('')
    setDone('')
    try {
      // in the manifest's order
      onChange(await api.setPluginGrants(p.name, p.requestedCapabilities.filter((c) => checked.includes(c))))
      setDone('Capabilities saved.')
    } catch (err) {
      setError(err instanceof ApiError ? fieldMessage(err) : errorText(err))
    } finally {
      setBusy(false)
    }
  }

  if (p.requestedCapabilities.length === 0) return <p className="muted plugin-section">Requests no capabilities.</p>
  const changed = grantsKey(checked) !== stored
  return (
    <form className="plugin-section plugin-grants" onSubmit={submit}>
      <fieldset aria-describedby={error ? `${id}-error` : undefined}>
        <legend>Capabilities</legend>
        {p.requestedCapabilities.map((c) => (
          <label key={c} className="check">
            <input
              type="checkbox"
              name={`grant-${c}`}
              checked={checked.includes(c)}
              onChange={(e) => setChecked(e.target.checked ? [...checked, c] : checked.filter((x) => x !== c))}
            />
            <code>{CAPABILITY_INFO[c]?.label ?? c.toLowerCase()}</code>
            <span className="muted">{CAPABILITY_INFO[c]?.description ?? ''}</span>
          </label>
        ))}
      </fieldset>
      {error && <p className="error" role="alert" id={`${id}-error`}>{error}</p>}
      {done && !changed && <p className="ok" role="status">{done}</p>}
      <div className="plugin-actions">
        <button type="submit" disabled={busy || !changed}>{busy ? 'Saving…' : 'Save capabilities'}</button>
      </div>
    </form>
  )
}

/** One input per setting of the manifest; saves the values that are not empty. */
function ConfigForm ({ plugin: p, onChange }: { plugin: api.Plugin, onChange: (p: api.Plugin) => void }) {
  const stored = JSON.stringify(p.config ?? {})
  const [base, setBase] = useState(stored)
  const [values, setValues] = useState<FormValues>(() => formValues(p.configSchema, p.config))
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({})
  const [error, setError] = useState('')
  const [done, setDone] = useState('')
  const [busy, setBusy] = useState(false)
  const id = useId()
  if (stored !== base) {
    setBase(stored)
    setValues(formValues(p.configSchema, p.config))
  }
  const keys = p.configSchema.map((s) => s.key)

  const set = (key: string, v: FormValue) => {
    setValues({ ...values, [key]: v })
    setDone('')
    if (fieldErrors[key]) setFieldErrors({ ...fieldErrors, [key]: '' })
  }

  const submit = async (e: React.FormEvent) => {
    e.preventDefault()
    setError('')
    setDone('')
    const { config, errors } = configFromForm(p.configSchema, values)
    setFieldErrors(errors)
    if (Object.keys(errors).length > 0) return
    setBusy(true)
    try {
      onChange(await api.setPluginConfig(p.name, config))
      setDone('Settings saved.')
    } catch (err) {
      // VALIDATION with `extensions.field` = `config.<key>`: next to that input
      const key = errorField(err, keys, 'config.')
      if (key && err instanceof ApiError) setFieldErrors({ [key]: fieldMessage(err) })
      else setError(errorText(err))
    } finally {
      setBusy(false)
    }
  }

  return (
    <form className="plugin-section plugin-config" onSubmit={submit} noValidate>
      <fieldset>
        <legend>Settings</legend>
        {p.configSchema.map((s) => {
          const input = `${id}-${s.key}`
          const hint = settingHint(s)
          const err = fieldErrors[s.key]
          const describedBy = [hint ? `${input}-hint` : '', err ? `${input}-error` : ''].filter(Boolean).join(' ') || undefined
          const common = {
            id: input,
            name: s.key,
            'aria-invalid': err ? true : undefined,
            'aria-describedby': describedBy
          }
          const v = values[s.key]
          return (
            <div className={`setting setting-${s.type}`} key={s.key}>
              {s.type === 'boolean'
                ? (
                  <label className="check" htmlFor={input}>
                    <input type="checkbox" {...common} checked={v === true} onChange={(e) => set(s.key, e.target.checked)} />
                    <code>{s.key}</code>
                  </label>
                  )
                : <label htmlFor={input}><code>{s.key}</code></label>}
              {(s.type === 'integer' || s.type === 'number') && (
                <input
                  type="number"
                  {...common}
                  inputMode={s.type === 'integer' ? 'numeric' : 'decimal'}
                  step={s.type === 'integer' ? 1 : 'any'}
                  min={s.minimum ?? undefined}
                  max={s.maximum ?? undefined}
                  placeholder={placeholderFor(s)}
                  value={typeof v === 'string' ? v : ''}
                  onChange={(e) => set(s.key, e.target.value)}
                />
              )}
              {s.type === 'array' && (
                <textarea {...common} rows={4} placeholder={placeholderFor(s)} value={typeof v === 'string' ? v : ''} onChange={(e) => set(s.key, e.target.value)} />
              )}
              {s.type !== 'boolean' && s.type !== 'array' && s.type !== 'integer' && s.type !== 'number' && (
                <input type="text" {...common} placeholder={placeholderFor(s)} value={typeof v === 'string' ? v : ''} onChange={(e) => set(s.key, e.target.value)} />
              )}
              {hint && <span className="hint" id={`${input}-hint`}>{hint}</span>}
              {err && <span className="field-error" id={`${input}-error`} role="alert">{err}</span>}
            </div>
          )
        })}
      </fieldset>
      {error && <p className="error" role="alert">{error}</p>}
      {done && <p className="ok" role="status">{done}</p>}
      <div className="plugin-actions">
        <button className="primary" type="submit" disabled={busy}>{busy ? 'Saving…' : 'Save settings'}</button>
      </div>
    </form>
  )
}

/** The description, the allowed range, the default, and for lists how to type them. */
function settingHint (s: api.PluginSetting): string {
  const parts: string[] = []
  if (s.description) parts.push(/[.!?…]$/.test(s.description.trim()) ? s.description.trim() : `${s.description.trim()}.`)
  if (s.type === 'array') parts.push('One value per line.')
  if (s.minimum !== null && s.maximum !== null) parts.push(`From ${s.minimum} to ${s.maximum}.`)
  else if (s.minimum !== null) parts.push(`At least ${s.minimum}.`)
  else if (s.maximum !== null) parts.push(`At most ${s.maximum}.`)
  const d = s.default
  const hasDefault = d !== null && d !== undefined && !(Array.isArray(d) && d.length === 0) && d !== ''
  if (hasDefault && s.type !== 'boolean') parts.push(`Empty: ${Array.isArray(d) ? d.join(', ') : String(d)} (the default).`)
  else if (s.type === 'boolean' && typeof d === 'boolean') parts.push(`Default: ${d ? 'on' : 'off'}.`)
  return parts.join(' ')
}
