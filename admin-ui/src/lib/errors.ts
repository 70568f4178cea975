// Errors from the server, as the UI shows them. Every GraphQL error carries
// `extensions.code`; the message shown is chosen by code, with the server's own message
// where it says something specific (a FORBIDDEN publish, a VALIDATION field).

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
  | 'INTERNAL'
  | 'NETWORK'

export interface GqlErrorShape {
  message: string
  path?: (string | number)[]
  extensions?: { code?: string, field?: string, current?: unknown, [k: string]: unknown }
}

export class ApiError extends Error {
  readonly code: ErrorCode
  readonly field?: string
  readonly current?: unknown
  readonly serverMessage: string

  constructor (code: ErrorCode, serverMessage: string, extra: { field?: string, current?: unknown } = {}) {
    super(describeError(code, serverMessage, extra.field))
    this.name = 'ApiError'
    this.code = code
    this.serverMessage = serverMessage
    this.field = extra.field
    this.current = extra.current
  }
}

const KNOWN: ReadonlySet<string> = new Set([
  'UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND', 'CONFLICT', 'VALIDATION',
  'LIMIT_EXCEEDED', 'BUSY', 'RATE_LIMITED', 'PLUGIN_REJECTED', 'INTERNAL', 'NETWORK'
])

/** Turn one GraphQL error into an ApiError (unknown or missing codes count as INTERNAL). */
export function fromGraphQLError (e: GqlErrorShape): ApiError {
  const raw = e.extensions?.code
  const code = (typeof raw === 'string' && KNOWN.has(raw) ? raw : 'INTERNAL') as ErrorCode
  return new ApiError(code, e.message ?? '', { field: e.extensions?.field, current: e.extensions?.current })
}

/** The sentence shown to a person for an error. */
export function describeError (code: ErrorCode, serverMessage: string, field?: string): string {
  const msg = serverMessage.trim()
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
      return msg ? `Rejected by a plugin: ${msg}` : 'A plugin rejected this change.'
    case 'NETWORK':
      return 'Cannot reach the server. Check your connection and try again.'
    case 'INTERNAL':
    default:
      return 'Something went wrong on the server. Try again in a moment.'
  }
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
