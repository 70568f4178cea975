// Errors from the server, as the UI shows them. Every GraphQL error carries
// `extensions.code`; the message shown is chosen by code, with the server's own message
// where it says something specific (a FORBIDDEN publish, a VALIDATION field). Plugins
// refusing a change (PLUGIN_REJECTED) or failing on its path (PLUGIN_FAILED) name
// themselves in the extensions, and the editor shows that in place.

export type ErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'VALIDATION'
  | 'LIMIT_EXCEEDED'
  | 'BUSY'
  | 'RATE_LIMITED'
  | 'PLUGIN_REJECTED'
  | 'PLUGIN_FAILED'
  | 'INTERNAL'
  | 'NETWORK'

export interface GqlErrorShape {
  message: string
  path?: (string | number)[]
  extensions?: { code?: string, field?: string | null, current?: unknown, [k: string]: unknown }
}

/** What a plugin error names: PLUGIN_REJECTED's plugin, message and reason, PLUGIN_FAILED's kind. */
export interface PluginDetail {
  plugin?: string
  /** the plugin's own message (PLUGIN_REJECTED) */
  pluginMessage?: string
  /** the plugin's short code for the refusal, e.g. `banned-word` */
  reason?: string
  /** how the call failed (PLUGIN_FAILED): `out-of-fuel`, `timeout`, `trap`, … */
  kind?: string
}

export class ApiError extends Error {
  readonly code: ErrorCode
  readonly field?: string
  readonly current?: unknown
  readonly serverMessage: string
  readonly plugin?: PluginDetail

  constructor (code: ErrorCode, serverMessage: string, extra: { field?: string, current?: unknown, plugin?: PluginDetail } = {}) {
    super(describeError(code, serverMessage, extra.field, extra.plugin))
    this.name = 'ApiError'
    this.code = code
    this.serverMessage = serverMessage
    this.field = extra.field
    this.current = extra.current
    this.plugin = extra.plugin
  }
}

const KNOWN: ReadonlySet<string> = new Set([
  'UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND', 'CONFLICT', 'VALIDATION',
  'LIMIT_EXCEEDED', 'BUSY', 'RATE_LIMITED', 'PLUGIN_REJECTED', 'PLUGIN_FAILED', 'INTERNAL', 'NETWORK'
])

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined)

/** Turn one GraphQL error into an ApiError (unknown or missing codes count as INTERNAL). */
export function fromGraphQLError (e: GqlErrorShape): ApiError {
  const ext = e.extensions ?? {}
  const raw = ext.code
  const code = (typeof raw === 'string' && KNOWN.has(raw) ? raw : 'INTERNAL') as ErrorCode
  const plugin = code === 'PLUGIN_REJECTED' || code === 'PLUGIN_FAILED'
    ? { plugin: str(ext.plugin), pluginMessage: str(ext.pluginMessage), reason: str(ext.reason), kind: str(ext.kind) }
    : undefined
  // PLUGIN_REJECTED sends `field: null` when the refusal is about no field in particular
  return new ApiError(code, e.message ?? '', { field: str(ext.field), current: ext.current, plugin })
}

/** The sentence shown to a person for an error. */
export function describeError (code: ErrorCode, serverMessage: string, field?: string, plugin?: PluginDetail): string {
  const msg = withoutField(serverMessage.trim(), field)
  switch (code) {
    case 'UNAUTHENTICATED':
      return 'Your session has ended. Sign in again.'
    case 'FORBIDDEN':
      return msg ? `Not allowed: ${msg}` : 'You do not have permission to do that.'
    case 'NOT_FOUND':
      return 'Not found: it may have been deleted, or it is not shared with you.'
    case 'CONFLICT':
      return 'Someone else changed this at the same time.'
    case 'VALIDATION':
      return field ? `${humanField(field)}: ${msg || 'invalid value'}` : (msg || 'That value is not valid.')
    case 'LIMIT_EXCEEDED':
      return msg ? `Too large: ${msg}` : 'That is over a limit of this server.'
    case 'BUSY':
      return 'The server is busy. Try again in a moment.'
    case 'RATE_LIMITED':
      // The server says how long: "too many sign-in attempts for this email; try again in 300 seconds".
      return msg ? `${msg.charAt(0).toUpperCase()}${msg.slice(1)}.` : 'Too many attempts. Try again later.'
    case 'PLUGIN_REJECTED':
      if (plugin?.plugin) return `Plugin ${plugin.plugin} refused this: ${sentence(plugin.pluginMessage ?? '') || 'no reason given.'}`
      return msg ? `Rejected by a plugin: ${msg}` : 'A plugin rejected this change.'
    case 'PLUGIN_FAILED':
      return pluginFailedText(plugin)
    case 'NETWORK':
      return 'Cannot reach the server. Check your connection and try again.'
    case 'INTERNAL':
    default:
      return 'Something went wrong on the server. Try again in a moment.'
  }
}

/** "Plugin word-count failed (out-of-fuel); nothing was saved." */
function pluginFailedText (p?: PluginDetail): string {
  if (!p?.plugin) return 'A plugin failed; nothing was saved.'
  return `Plugin ${p.plugin} failed${p.kind ? ` (${p.kind})` : ''}; nothing was saved.`
}

/** The server prefixes a VALIDATION message with its field ("config.words: …"): shown once. */
function withoutField (msg: string, field?: string): string {
  return field && msg.startsWith(`${field}: `) ? msg.slice(field.length + 2).trim() : msg
}

/** Capitalised, with a full stop: a plugin's message shown as a sentence. */
function sentence (msg: string): string {
  const m = msg.trim()
  if (!m) return ''
  const cap = `${m.charAt(0).toUpperCase()}${m.slice(1)}`
  return /[.!?…]$/.test(cap) ? cap : `${cap}.`
}

function humanField (field: string): string {
  const last = field.split('.').pop() ?? field
  const spaced = last.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase()
  return spaced.charAt(0).toUpperCase() + spaced.slice(1)
}

export function errorText (e: unknown): string {
  if (e instanceof ApiError) return e.message
  if (e instanceof Error) return e.message
  return String(e)
}

/** The message for one field, without the field's name (next to its input). */
export function fieldMessage (e: ApiError): string {
  if (e.code === 'PLUGIN_REJECTED' && e.plugin?.plugin) return `${e.plugin.plugin}: ${e.plugin.pluginMessage ?? 'refused'}`
  return withoutField(e.serverMessage.trim(), e.field) || e.message
}

/**
 * The input an error is about, when it is one of `fields`: a VALIDATION error's field or
 * the field a plugin named (`title`, `slug`; `config.words` matches `words` under the
 * prefix `config.`). Null for other errors and fields (`body`, none).
 */
export function errorField<F extends string> (e: unknown, fields: readonly F[], prefix = ''): F | null {
  if (!(e instanceof ApiError) || !e.field) return null
  if (e.code !== 'VALIDATION' && e.code !== 'PLUGIN_REJECTED') return null
  if (prefix && !e.field.startsWith(prefix)) return null
  const f = e.field.slice(prefix.length)
  return (fields as readonly string[]).includes(f) ? f as F : null
}

export type PluginAction = 'publish' | 'saveVersion' | 'restore' | 'metadata'

/** A plugin's refusal or failure, as the notice near the action shows it. */
export interface PluginNotice {
  kind: 'rejected' | 'failed'
  plugin: string
  /** the first line: what did not happen, and which plugin */
  headline: string
  /** the plugin's message (a refusal), or '' */
  detail: string
  reason?: string
  field?: string
}

const NOT_DONE: Record<PluginAction, string> = {
  publish: 'Not published',
  saveVersion: 'Version not saved',
  restore: 'Not restored',
  metadata: 'Not saved'
}

/** The notice for a PLUGIN_REJECTED or PLUGIN_FAILED error; null for any other error. */
export function pluginNotice (e: unknown, action: PluginAction): PluginNotice | null {
  if (!(e instanceof ApiError)) return null
  const plugin = e.plugin?.plugin ?? 'unknown'
  if (e.code === 'PLUGIN_FAILED') {
    return { kind: 'failed', plugin, headline: pluginFailedText(e.plugin), detail: 'An admin can see why on the Plugins page.' }
  }
  if (e.code !== 'PLUGIN_REJECTED') return null
  const detail = sentence(e.plugin?.pluginMessage ?? withoutField(e.serverMessage, e.plugin?.plugin))
  return {
    kind: 'rejected',
    plugin,
    headline: `${NOT_DONE[action]}: the plugin ${plugin} refused it.`,
    detail,
    reason: e.plugin?.reason,
    field: e.field
  }
}
