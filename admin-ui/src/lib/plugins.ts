// The Plugins screen's logic without React: names and labels, the settings form built
// from a plugin's `configSchema` (and the `config` object it saves), the call statistics,
// and the fields `enrich` plugins compute for versions, as the editor's sidebar shows them.

import type { Fields, PluginCapability, PluginHook, PluginSetting, PluginStatus } from './api'

export const PLUGIN_STATUS_LABEL: Record<PluginStatus, string> = {
  ENABLED: 'Enabled',
  DISABLED: 'Disabled',
  FAILING: 'Failing',
  BROKEN: 'Broken'
}

export const CAPABILITY_INFO: Record<PluginCapability, { label: string, description: string }> = {
  CONFIG: { label: 'config', description: 'read its settings' },
  KV: { label: 'kv', description: 'keep its own key/value state (with a quota)' },
  CONTENT: { label: 'content', description: 'read documents the acting user can read' }
}

/** BEFORE_SAVE_VERSION → before-save-version (the manifest's spelling). */
export function hookName (h: PluginHook | string): string {
  return h.toLowerCase().replace(/_/g, '-')
}

/** A setting's value in the form: text for text, number and array inputs, a flag for a checkbox. */
export type FormValue = string | boolean
export type FormValues = Record<string, FormValue>

const isEmpty = (v: unknown) => v === undefined || v === null

/** One value (the stored one, or the schema's default) as the form holds it. */
function toForm (s: PluginSetting, v: unknown): FormValue {
  switch (s.type) {
    case 'boolean': return v === true
    case 'array': return Array.isArray(v) ? v.map(String).join('\n') : (isEmpty(v) ? '' : String(v))
    default: return isEmpty(v) ? '' : (typeof v === 'object' ? JSON.stringify(v) : String(v))
  }
}

/**
 * The form's starting values: what the admin set, else the default for a checkbox (text
 * fields stay empty and show the default as their placeholder: empty means "the default").
 */
export function formValues (schema: PluginSetting[], config: Record<string, unknown> | null): FormValues {
  const out: FormValues = {}
  for (const s of schema) {
    const set = config && Object.prototype.hasOwnProperty.call(config, s.key) ? config[s.key] : undefined
    out[s.key] = !isEmpty(set) ? toForm(s, set) : (s.type === 'boolean' ? toForm(s, s.default) : '')
  }
  return out
}

/** The placeholder of a text, number or array input: the default, when there is one. */
export function placeholderFor (s: PluginSetting): string {
  if (s.type === 'array') {
    const d = Array.isArray(s.default) ? s.default.map(String) : []
    return d.length > 0 ? d.join('\n') : 'One per line'
  }
  if (isEmpty(s.default)) return ''
  return typeof s.default === 'object' ? JSON.stringify(s.default) : String(s.default)
}

/**
 * The `config` object to save: every value that is not empty (a checkbox counts when it
 * differs from its default). Numbers the browser could not read are errors by key; the
 * server checks the rest (types, minimum, maximum).
 */
export function configFromForm (schema: PluginSetting[], values: FormValues): { config: Record<string, unknown>, errors: Record<string, string> } {
  const config: Record<string, unknown> = {}
  const errors: Record<string, string> = {}
  for (const s of schema) {
    const v = values[s.key]
    if (s.type === 'boolean') {
      if (typeof v === 'boolean' && v !== (s.default === true)) config[s.key] = v
      continue
    }
    const text = typeof v === 'string' ? v : ''
    if (s.type === 'array') {
      const items = text.split('\n').map((l) => l.trim()).filter(Boolean)
      if (items.length > 0) config[s.key] = items
    } else if (s.type === 'integer' || s.type === 'number') {
      if (text.trim() === '') continue
      const n = Number(text)
      if (Number.isNaN(n)) errors[s.key] = s.type === 'integer' ? 'Enter a whole number.' : 'Enter a number.'
      else config[s.key] = n
    } else if (text !== '') {
      config[s.key] = text
    }
  }
  return { config, errors }
}

/** Milliseconds of a call: two decimals under 10 ms, one above; "—" before any call. */
export function formatMs (ms: number | null | undefined): string {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—'
  return `${ms < 10 ? ms.toFixed(2) : ms.toFixed(1)} ms`
}

export function formatCount (n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : n.toLocaleString('en-US')
}

// Plugin fields (`fields` of a document or version)

export interface FieldGroup { plugin: string, items: { key: string, value: string }[] }
export interface FieldsView {
  /** "412 words · 3 min read", from `fields["word-count"]`; null without it */
  wordCount: string | null
  /** every other plugin's fields (and word-count's other keys), as key: value */
  groups: FieldGroup[]
}

function show (v: unknown): string {
  if (v === null || v === undefined) return '—'
  if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object')) return v.map(show).join(', ')
  if (typeof v === 'object') return JSON.stringify(v)
  return String(v)
}

/** "412 words · 3 min read" (or just the words when there is no reading time). */
export function wordCountText (v: unknown): string | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null
  const { words, readingMinutes } = v as Record<string, unknown>
  if (typeof words !== 'number') return null
  const w = `${words.toLocaleString('en-US')} ${words === 1 ? 'word' : 'words'}`
  if (typeof readingMinutes !== 'number') return w
  return `${w} · ${readingMinutes < 1 ? '< 1' : readingMinutes.toLocaleString('en-US')} min read`
}

export function fieldsView (fields: Fields | null | undefined): FieldsView {
  const view: FieldsView = { wordCount: null, groups: [] }
  if (!fields || typeof fields !== 'object') return view
  for (const [plugin, value] of Object.entries(fields)) {
    let skip: string[] = []
    if (plugin === 'word-count') {
      view.wordCount = wordCountText(value)
      if (view.wordCount !== null) skip = ['words', 'readingMinutes']
    }
    const items = value && typeof value === 'object' && !Array.isArray(value)
      ? Object.entries(value as Record<string, unknown>).filter(([k]) => !skip.includes(k)).map(([key, v]) => ({ key, value: show(v) }))
      : [{ key: 'value', value: show(value) }]
    if (items.length > 0) view.groups.push({ plugin, items })
  }
  return view
}
