// One Hocuspocus instance, as the Hocuspocus docs describe scaling it out: @hocuspocus/server
// with @hocuspocus/extension-redis, every instance pointed at the same Redis. No persistence
// extension (documents live in memory only), no auth hook: the stock defaults otherwise.
//
//   node hocuspocus-server.mjs --port 0 [--redis-port P] [--name NAME]
//
// Without --redis-port it runs alone, without the Redis extension. Prints
// `listening port=N` on stdout once it accepts connections; stops on SIGTERM/SIGINT.

import { Server } from '@hocuspocus/server'
import { Redis } from '@hocuspocus/extension-redis'

function arg (name, fallback) {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}

const port = Number(arg('port', '0'))
const redisPort = arg('redis-port', null)
const name = arg('name', `hocuspocus-${process.pid}`)

const extensions = []
if (redisPort) {
  extensions.push(new Redis({ host: '127.0.0.1', port: Number(redisPort), identifier: name }))
}

const server = new Server({
  name,
  port,
  address: '127.0.0.1',
  quiet: true,
  stopOnSignals: false,
  extensions
})

await server.listen()
process.stdout.write(`listening port=${server.address.port}\n`)

let stopping = false
async function stop () {
  if (stopping) return
  stopping = true
  const timer = setTimeout(() => process.exit(0), 3000)
  timer.unref()
  try { await server.destroy() } catch {}
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
