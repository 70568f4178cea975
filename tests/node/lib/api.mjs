// The few REST calls the tests need: register a user, create a document, share it.

let userCount = 0
const runId = `${process.pid}-${Date.now().toString(36)}`

async function call (server, method, path, { token, body, expect }) {
  const headers = { accept: 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(`${server.httpUrl}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  if (res.status !== expect) {
    throw new Error(`${method} ${path} answered ${res.status}, expected ${expect}: ${text}`)
  }
  return text ? JSON.parse(text) : null
}

/**
 * Register a new user (the first one on a fresh server is the admin).
 * @returns {Promise<{ token: string, user: { id: string }, email: string }>}
 */
export async function register (server, name = 'user') {
  const n = ++userCount
  const email = `${name}-${n}-${runId}@example.com`
  const res = await call(server, 'POST', '/api/auth/register', {
    body: { email, password: 'correct horse battery staple', displayName: `${name} ${n}` },
    expect: 201
  })
  if (typeof res?.token !== 'string' || !res.user?.id) throw new Error(`unexpected register answer: ${JSON.stringify(res)}`)
  return { ...res, email }
}

/** @returns {Promise<{ id: string }>} */
export async function createDocument (server, token, title = 'Realtime test document') {
  const res = await call(server, 'POST', '/api/documents', { token, body: { title }, expect: 201 })
  if (!res?.id) throw new Error(`unexpected create answer: ${JSON.stringify(res)}`)
  return res
}

/** The owner shares `docId` with `userEmail` as 'viewer' or 'editor'. */
export async function share (server, token, docId, userEmail, role) {
  await call(server, 'PATCH', `/api/documents/${encodeURIComponent(docId)}/access`, {
    token,
    body: { userEmail, role },
    expect: 204
  })
}
