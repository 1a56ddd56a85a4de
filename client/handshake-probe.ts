// Why a WebSocket did not open. Browsers hide the answer to a refused upgrade (the socket just closes
// with 1006), so after a failed open the client asks the same URL again as a plain HTTPS GET: the
// server runs the same handshake (Origin, then token) and answers 403 or 401 with a readable status,
// or 426 when the handshake passed and only the upgrade was missing — the server is reachable and
// something between refuses WebSockets. The token goes as `?access_token=`, as on the socket itself.

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>

/** What the probe found. */
export type ProbeVerdict =
  /** 401: the token was refused. */
  | 'unauthorized'
  /** 403: the page's Origin was refused. */
  | 'origin-refused'
  /** 426: the handshake passed; the WebSocket upgrade itself is what fails (a proxy, a policy). */
  | 'upgrade-blocked'
  /** Anything else (no answer, 429, 503…): a passing condition, worth a retry. */
  | 'retry'

/** The http(s) URL next to the `/ws` endpoint: `wss://host/p/ws` → `https://host/p/<path>`. */
export function httpUrl (wsUrl: string, path: string): URL {
  const url = new URL(path, wsUrl)
  url.protocol = url.protocol === 'ws:' ? 'http:' : 'https:'
  url.search = ''
  url.hash = ''
  return url
}

/** Asks the WebSocket URL over plain HTTP why it did not open; bounded by `signal`. Never throws. */
export async function probeHandshake (fetchFn: FetchLike, socketUrl: string, signal: AbortSignal): Promise<ProbeVerdict> {
  const url = new URL(socketUrl)
  url.protocol = url.protocol === 'ws:' ? 'http:' : 'https:'
  let response: Response
  try {
    // `omit`: the token is the credential; cookies are not part of this protocol.
    response = await fetchFn(url.href, { method: 'GET', credentials: 'omit', cache: 'no-store', signal })
  } catch {
    // No answer, or one the page may not read (a refusal without CORS headers looks the same).
    return 'retry'
  }
  // The body is not needed; dropping it frees the connection.
  response.body?.cancel().catch(() => {})
  if (response.status === 401) return 'unauthorized'
  if (response.status === 403) return 'origin-refused'
  if (response.status === 426) return 'upgrade-blocked'
  return 'retry'
}
