// Per-file setup: one server for the file's tests, and cleanup that cannot be forgotten.

import { after, before } from 'node:test'
import { TestServer } from './server.mjs'
import { destroyAllClients } from './client.mjs'

/**
 * Start a server before the file's tests, then run `setup` (registering users, …), and after the
 * tests destroy every client that is still alive and stop the server (removing its data
 * directory). `setup` is part of the same `before` hook on purpose: Node 20 runs several
 * top-level `before` hooks concurrently, not one after the other.
 * @param {string} name
 * @param {() => any} [setup]
 */
export function useServer (name, setup = () => {}) {
  const server = new TestServer({ name })
  before(async () => {
    await server.start()
    await setup()
  })
  after(async () => {
    destroyAllClients()
    await server.dispose()
    // a test that failed halfway may leave a timer or socket behind; don't let it hang the run
    setTimeout(() => {
      process.stderr.write(`${name}: handles still open 10 s after the last test; exiting\n`)
      process.exit()
    }, 10_000).unref()
  })
  return server
}
