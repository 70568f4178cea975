// A graphql-ws subscription (graphql-transport-ws on GET /graphql, token in connection_init)
// as an async queue of events, for tests.

import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { createClient } from 'graphql-ws'

/**
 * Subscribes to `query` on `server` as `token`. Each event is the raw result
 * (`{ data }`), an error (`{ errors }`) or the end (`{ complete: true }`).
 */
export function subscribe (server, token, query, variables) {
  const client = createClient({
    url: `ws://127.0.0.1:${server.port}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { token },
    retryAttempts: 0,
    lazy: false
  })
  const queue = []
  const waiters = []
  const seen = []
  const push = (item) => {
    seen.push(item)
    const w = waiters.shift()
    if (w) w(item)
    else queue.push(item)
  }
  client.subscribe({ query, variables }, {
    next: (v) => push(v),
    error: (e) => push({ errors: Array.isArray(e) ? e : [{ message: String(e?.message ?? e?.reason ?? e) }] }),
    complete: () => push({ complete: true })
  })
  return {
    /** The next event, whatever it is. */
    next (timeout = 10_000) {
      if (queue.length) return Promise.resolve(queue.shift())
      return new Promise((resolve, reject) => {
        const waiter = (v) => { clearTimeout(timer); resolve(v) }
        // A waiter that timed out leaves the list: an event arriving later is queued for
        // the next call instead of going to a promise nobody awaits any more.
        const timer = setTimeout(() => {
          const i = waiters.indexOf(waiter)
          if (i >= 0) waiters.splice(i, 1)
          reject(new Error(`no event within ${timeout} ms`))
        }, timeout)
        waiters.push(waiter)
      })
    },
    /** Every event with data received so far. */
    dataEvents: () => seen.filter((e) => e.data),
    /** The `data` of the next event for which `pred(data)` holds, skipping others. */
    async until (pred, what, timeout = 10_000) {
      const deadline = Date.now() + timeout
      for (;;) {
        const ev = await this.next(Math.max(1, deadline - Date.now())).catch(() => { throw new Error(`no ${what} within ${timeout} ms`) })
        assert.ok(!ev.errors && !ev.complete, `${what}: ${JSON.stringify(ev)}`)
        if (pred(ev.data)) return ev.data
      }
    },
    dispose: () => client.dispose()
  }
}
