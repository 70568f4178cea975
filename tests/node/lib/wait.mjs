// Waiting helpers. Synchronisation is always driven by events (Y.Doc 'update', provider
// 'sync'/'status', ws 'message', process 'exit'); `pollUntil` exists only for conditions that
// have no event, and every wait has a timeout that fails with a description of what was awaited.

/** Subscribe to `event` on a Node EventEmitter, a lib0 Observable (Y.Doc, WebsocketProvider,
 * Awareness) or a DOM-style EventTarget, and return the unsubscribe function. */
export function listen (target, event, fn) {
  if (typeof target.on === 'function' && typeof target.off === 'function') {
    target.on(event, fn)
    return () => target.off(event, fn)
  }
  if (typeof target.addEventListener === 'function') {
    target.addEventListener(event, fn)
    return () => target.removeEventListener(event, fn)
  }
  throw new TypeError(`cannot listen to '${event}' on ${target}`)
}

export class TimeoutError extends Error {}

/**
 * Resolve with the arguments of the first `event` for which `filter(...args)` is true.
 * @param {any} target
 * @param {string} event
 * @param {{ timeout?: number, filter?: (...args: any[]) => boolean, what?: string }} [opts]
 */
export function waitForEvent (target, event, { timeout = 10_000, filter = () => true, what } = {}) {
  return new Promise((resolve, reject) => {
    const off = listen(target, event, (...args) => {
      let ok
      try {
        ok = filter(...args)
      } catch (err) {
        cleanup()
        reject(err)
        return
      }
      if (ok) {
        cleanup()
        resolve(args)
      }
    })
    const timer = setTimeout(() => {
      cleanup()
      reject(new TimeoutError(`timed out after ${timeout} ms waiting for ${what ?? `event '${event}'`}`))
    }, timeout)
    function cleanup () {
      off()
      clearTimeout(timer)
    }
  })
}

/**
 * Resolve once `predicate()` is truthy. It is checked now and again after any of the given
 * events fires (checks are coalesced into one per event-loop turn, so a burst of updates costs
 * one check). On timeout the error carries `describe()` to say what was still missing.
 * @param {() => any} predicate
 * @param {{ on: Array<[any, string]>, timeout?: number, what?: string, describe?: () => string }} opts
 */
export function waitUntil (predicate, { on, timeout = 10_000, what = 'condition', describe } = {}) {
  return new Promise((resolve, reject) => {
    let scheduled = false
    let done = false
    const offs = []
    const finish = (err, value) => {
      if (done) return
      done = true
      clearTimeout(timer)
      for (const off of offs) off()
      if (err) reject(err)
      else resolve(value)
    }
    const check = () => {
      scheduled = false
      if (done) return
      let value
      try {
        value = predicate()
      } catch (err) {
        finish(err)
        return
      }
      if (value) finish(null, value)
    }
    const schedule = () => {
      if (!scheduled && !done) {
        scheduled = true
        setImmediate(check)
      }
    }
    const timer = setTimeout(() => {
      let detail = ''
      if (describe) {
        try {
          detail = '\n' + describe()
        } catch (err) {
          detail = `\n(describe failed: ${err})`
        }
      }
      finish(new TimeoutError(`timed out after ${timeout} ms waiting for ${what}${detail}`))
    }, timeout)
    for (const [target, event] of on) offs.push(listen(target, event, schedule))
    check()
  })
}

/**
 * Poll `predicate` every `interval` ms. Only for conditions that have no event to await.
 * @param {() => any | Promise<any>} predicate
 */
export async function pollUntil (predicate, { interval = 100, timeout = 10_000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout
  for (;;) {
    const value = await predicate()
    if (value) return value
    if (Date.now() > deadline) throw new TimeoutError(`timed out after ${timeout} ms polling for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, interval))
  }
}

/** A plain delay. Used only to *shape load* (when to kill the server, pacing of typing), never to
 * wait for something to have happened. */
export const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
