// A small GraphQL client over fetch (same origin: the session cookie authenticates), and
// one graphql-ws client for subscriptions.

import { createClient, type Client } from 'graphql-ws'
import { ApiError, fromGraphQLError, type GqlErrorShape } from './errors'

let onUnauthenticated: (() => void) | null = null

/** Called when any request answers UNAUTHENTICATED (the session ended elsewhere). */
export function setUnauthenticatedHandler (fn: (() => void) | null): void {
  onUnauthenticated = fn
}

export async function gql<T> (query: string, variables: Record<string, unknown> = {}): Promise<T> {
  let res: Response
  try {
    res = await fetch('/graphql', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query, variables })
    })
  } catch {
    throw new ApiError('NETWORK', 'network error')
  }
  let body: { data?: T, errors?: GqlErrorShape[] }
  try {
    body = await res.json()
  } catch {
    throw new ApiError(res.status >= 500 ? 'INTERNAL' : 'NETWORK', `HTTP ${res.status}`)
  }
  if (body.errors && body.errors.length > 0) {
    const err = fromGraphQLError(body.errors[0])
    if (err.code === 'UNAUTHENTICATED' && onUnauthenticated) onUnauthenticated()
    throw err
  }
  if (body.data === undefined || body.data === null) throw new ApiError('INTERNAL', 'empty answer')
  return body.data
}

let wsClient: Client | null = null

/** The shared subscription client (cookie-authenticated), created on first use. */
export function subscriptions (): Client {
  if (!wsClient) {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`
    wsClient = createClient({ url, lazy: true, retryAttempts: Infinity, shouldRetry: () => true })
  }
  return wsClient
}

/** Subscribe; returns the unsubscribe function. Errors are passed to `onError`, not thrown. */
export function subscribe<T> (
  query: string,
  variables: Record<string, unknown>,
  onData: (data: T) => void,
  onError: (e: ApiError) => void = () => {}
): () => void {
  return subscriptions().subscribe<T>({ query, variables }, {
    next: (r) => {
      if (r.errors && r.errors.length > 0) onError(fromGraphQLError(r.errors[0] as GqlErrorShape))
      else if (r.data) onData(r.data as T)
    },
    error: () => onError(new ApiError('NETWORK', 'subscription closed')),
    complete: () => {}
  })
}

export function resetSubscriptions (): void {
  void wsClient?.dispose()
  wsClient = null
}
