// Vellum admin UI service worker: keeps the app shell (index.html and its hashed assets)
// so that a reload while offline opens the app, which then loads unsent edits from
// IndexedDB. Navigations go to the network first (a new build is picked up at once) and
// fall back to the cached shell; hashed assets are immutable, so the cache answers them.
// The API (/api, /graphql, /ws) is never cached.

const CACHE = 'vellum-shell-v1'

async function cacheShell () {
  const cache = await caches.open(CACHE)
  const res = await fetch('/', { cache: 'no-cache' })
  if (!res.ok) return
  const html = await res.clone().text()
  await cache.put('/', res)
  const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1])
  await cache.addAll([...assets, '/favicon.svg'])
  // drop assets of older builds
  for (const req of await cache.keys()) {
    const path = new URL(req.url).pathname
    if (path.startsWith('/assets/') && !assets.includes(path)) await cache.delete(req)
  }
}

self.addEventListener('install', (event) => {
  event.waitUntil(cacheShell().catch(() => {}).then(() => self.skipWaiting()))
})

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name)
    // an install that could not fetch the shell (a network blip) tries once more
    if (!(await caches.match('/'))) await cacheShell().catch(() => {})
    await self.clients.claim()
  })())
})

self.addEventListener('fetch', (event) => {
  const req = event.request
  if (req.method !== 'GET') return
  const url = new URL(req.url)
  if (url.origin !== self.location.origin) return
  if (/^\/(api|graphql|ws|healthz|readyz)(\/|$)/.test(url.pathname)) return
  if (req.mode === 'navigate') {
    event.respondWith((async () => {
      try {
        const res = await fetch(req)
        if (res.ok) {
          const copy = res.clone()
          caches.open(CACHE).then((c) => c.put('/', copy)).catch(() => {})
        }
        return res
      } catch {
        const cached = await caches.match('/')
        return cached ?? Response.error()
      }
    })())
    return
  }
  if (url.pathname.startsWith('/assets/') || url.pathname === '/favicon.svg') {
    event.respondWith((async () => {
      const cached = await caches.match(req)
      if (cached) return cached
      const res = await fetch(req)
      if (res.ok) {
        const copy = res.clone()
        caches.open(CACHE).then((c) => c.put(req, copy)).catch(() => {})
      }
      return res
    })())
  }
})
