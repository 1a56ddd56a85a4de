// What a log line must never carry, removed where the logger writes: access tokens in a URL's query
// (browsers must send WebSocket/SSE tokens there) and the credentials of any URL (REDIS_URL and the
// like carry a password). Both run on every request or line, so each starts with a check that costs
// a character search and does the real work only when it finds something to look at.

export const REDACTED = '[REDACTED]'

// OAuth's names for a bearer credential in a query string. Keel accepts only access_token; the others
// are redacted too, since a client that sends one means a credential.
const SECRET_PARAMETERS = new Set(['access_token', 'refresh_token', 'id_token'])

/** The parameter name as the query parser reads it (URLSearchParams rules: `+` is a space, then %XX). */
function decodedName (name: string): string {
  if (!name.includes('%') && !name.includes('+')) return name
  try {
    return decodeURIComponent(name.replaceAll('+', ' '))
  } catch {
    // A malformed escape: the parser keeps the raw name, so it cannot spell a secret parameter.
    return name
  }
}

/**
 * The URL (or path) with the value of every secret query parameter replaced, whatever the encoding of
 * its name (`access%5Ftoken=` is `access_token=` to the query parser, so it is to this function too).
 */
export function redactQueryTokens (url: string): string {
  const q = url.indexOf('?')
  if (q === -1) return url
  const query = url.slice(q + 1)
  // Every secret name contains "token"; spelled otherwise, it contains an escape.
  if (!query.includes('token') && !query.includes('%')) return url
  let changed = false
  const params = query.split('&').map((param) => {
    const eq = param.indexOf('=')
    const name = eq === -1 ? param : param.slice(0, eq)
    if (!SECRET_PARAMETERS.has(decodedName(name))) return param
    changed = true
    return `${name}=${REDACTED}`
  })
  return changed ? `${url.slice(0, q + 1)}${params.join('&')}` : url
}

// Where a URL's authority ends: `/`, `?`, `#`, whitespace or a quote. In a JSON line a quote inside the
// userinfo is escaped (`\"`), so an escape never ends it.
const AUTHORITY_END = new Set(['/', '?', '#', '"', ' ', '\t', '\n', '\r'])

/** The last `@` of the authority starting at `start` (as URL parsers read the userinfo), or -1. */
function userinfoEnd (text: string, start: number): number {
  let sign = -1
  for (let i = start; i < text.length && !AUTHORITY_END.has(text[i]!); i += text[i] === '\\' ? 2 : 1) {
    if (text[i] === '@') sign = i
  }
  return sign
}

/**
 * Text with the credentials of every URL in it replaced: `redis://[REDACTED]@host:6379`. One pass over
 * the text (authorities never overlap), no regular expression: the text may hold a client's request line.
 */
export function redactCredentials (text: string): string {
  if (!text.includes('@')) return text
  let out = ''
  let from = 0
  for (let at = text.indexOf('://'); at !== -1; at = text.indexOf('://', at + 3)) {
    const sign = userinfoEnd(text, at + 3)
    if (sign === -1) continue
    out += `${text.slice(from, at + 3)}${REDACTED}`
    from = sign
  }
  return from === 0 ? text : out + text.slice(from)
}
