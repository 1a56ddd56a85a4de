// An HTTP contender: a server process from bench/servers/ plus the load generator that measures it.
// Before any load, one probe request checks the route answers 2xx and records which edge policies
// left their mark on the response, so a table never silently compares a stack with half its policies off.
// A contender that mirrors another (the raw node:http floor) is handed that one's probed headers and
// must then answer the same response, or it is not measured.

import type { IncomingHttpHeaders } from 'node:http'
import { autocannonWindow, h2loadWindow, probe, type HttpLoad, type ProbeResponse } from './load.ts'
import { benchCertificate, startServer } from './server-process.ts'
import type { Contender, RunSettings } from './scenario.ts'

export interface HttpContenderSpec {
  id: string
  label: string
  /** File under bench/servers/. */
  script: string
  /** HTTPS + HTTP/2 (measured with h2load); otherwise cleartext HTTP/1.1 (measured with autocannon). */
  tls?: boolean
  load: HttpLoad
  /** A reason not to measure it (what it serves is absent), or undefined to run it. */
  skip?: () => string | undefined
  /** CPU-profile the server's serving phase into this file (the profiling pass). */
  profileFile?: string
  /**
   * Answer exactly what this contender answered: its server gets that probe's headers (ServerOptions.mirror),
   * and its own probe must show no `responseDifferences`. Listed after that contender in its scenario.
   */
  mirrors?: HttpContenderSpec
  /** Passed to the server as its `databaseUrl` (Keel: DATABASE_URL). */
  databaseUrl?: string
}

const POLICY_MARKS: Array<[string, (h: IncomingHttpHeaders) => boolean]> = [
  ['request id', (h) => h['x-request-id'] !== undefined],
  ['CORS', (h) => h['access-control-allow-origin'] !== undefined],
  ['security headers', (h) => h['x-content-type-options'] !== undefined || h['content-security-policy'] !== undefined],
  ['Cache-Control', (h) => h['cache-control'] !== undefined],
  ['ETag', (h) => h.etag !== undefined],
  ['rate limit', (h) => Object.keys(h).some((name) => /^(x-)?ratelimit/.test(name))]
]

/** Which policies' headers a response carries, and how its body was encoded. */
export function describeResponse (headers: IncomingHttpHeaders): string {
  const seen = POLICY_MARKS.filter(([, has]) => has(headers)).map(([name]) => name)
  const absent = POLICY_MARKS.filter(([, has]) => !has(headers)).map(([name]) => name)
  const coding = headers['content-encoding']
  // A buffered (synchronously compressed) body has a length; a streamed one has none (chunked on HTTP/1.1).
  const encoding = coding === undefined
    ? 'not compressed'
    : `${coding}, ${headers['content-length'] !== undefined ? 'buffered (content-length set: synchronous path)' : 'streamed (no content-length: stream path)'}`
  // What the header block weighs on HTTP/1.1 (name: value CRLF): every added header is written on every response.
  const headerBytes = Object.entries(headers)
    .filter(([name]) => !name.startsWith(':'))
    .reduce((sum, [name, value]) => sum + [value].flat().reduce((s, v) => s + name.length + String(v).length + 4, 0), 0)
  return `${Object.keys(headers).filter((n) => !n.startsWith(':')).length} headers (${headerBytes} B); ` +
    `policy headers seen: ${seen.join(', ') || 'none'}${absent.length > 0 ? `; absent: ${absent.join(', ')}` : ''}; body ${encoding}`
}

/** Headers whose values change from one response to the next; a mirror must send them, not the same values. */
export const PER_REQUEST_HEADERS: ReadonlySet<string> = new Set(['x-request-id', 'date', 'ratelimit-remaining', 'ratelimit-reset'])

/** How `candidate` differs from `reference`: status, header names and their order, values but the per-request ones, body. */
export function responseDifferences (reference: ProbeResponse, candidate: ProbeResponse): string[] {
  const differences: string[] = []
  if (candidate.status !== reference.status) differences.push(`status ${candidate.status} instead of ${reference.status}`)
  const names = Object.keys(reference.headers)
  const theirs = Object.keys(candidate.headers)
  differences.push(...names.filter((n) => !theirs.includes(n)).map((n) => `missing header ${n}`))
  differences.push(...theirs.filter((n) => !names.includes(n)).map((n) => `extra header ${n}`))
  if (differences.length === 0 && theirs.join() !== names.join()) differences.push(`headers in another order: ${theirs.join(', ')}`)
  for (const name of names) {
    const [want, got] = [reference.headers[name], candidate.headers[name]]
    if (got === undefined || PER_REQUEST_HEADERS.has(name) || String(got) === String(want)) continue
    differences.push(`${name}: "${String(got)}" instead of "${String(want)}"`)
  }
  if (!candidate.body.equals(reference.body)) differences.push('a different body')
  return differences
}

// Each spec's latest probe, for the contenders that mirror it (started after it in the same run).
const probes = new WeakMap<HttpContenderSpec, ProbeResponse>()

function mirroredProbe (spec: HttpContenderSpec): ProbeResponse | undefined {
  if (spec.mirrors === undefined) return undefined
  const reference = probes.get(spec.mirrors)
  if (reference === undefined) throw new Error(`${spec.label} mirrors ${spec.mirrors.label}, which has not answered yet: list it first`)
  return reference
}

/** The note of a mirror whose response matched; throws when it did not. */
function mirrorNote (spec: HttpContenderSpec, reference: ProbeResponse, response: ProbeResponse): string {
  const differences = responseDifferences(reference, response)
  if (differences.length > 0) throw new Error(`${spec.label} does not answer what ${spec.mirrors!.label} answers: ${differences.join('; ')}`)
  const perRequest = Object.keys(response.headers).filter((n) => PER_REQUEST_HEADERS.has(n))
  return `same response as ${spec.mirrors!.label}: the same ${Object.keys(response.headers).length} headers in the same order, ` +
    `equal values but the per-request ${perRequest.join(', ')}, the same ${response.bytes} B body`
}

export function httpContender (spec: HttpContenderSpec): Contender {
  return {
    id: spec.id,
    label: spec.label,
    skip: spec.skip,
    start: async (settings: RunSettings) => {
      const tls = spec.tls === true ? await benchCertificate(settings.workDir) : undefined
      const reference = mirroredProbe(spec)
      const options = { tls, profileFile: spec.profileFile, mirror: reference?.headers, databaseUrl: spec.databaseUrl }
      const server = await startServer({ script: spec.script, options, cpu: settings.pinning?.server })
      const origin = `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${server.port}`
      try {
        const response = await probe(origin, spec.load.path, spec.load.headers)
        if (response.status < 200 || response.status > 299) throw new Error(`${spec.label} answered ${response.status} on GET ${spec.load.path}`)
        probes.set(spec, response)
        const notes = [`${response.bytes} B body, ${describeResponse(response.headers)}`]
        if (reference !== undefined) notes.push(mirrorNote(spec, reference, response))
        return {
          notes,
          cpuSeconds: server.cpuSeconds,
          measure: (seconds) => tls === undefined
            ? autocannonWindow(origin, spec.load, seconds)
            : h2loadWindow(origin, spec.load, seconds, settings.pinning?.load),
          stop: server.stop
        }
      } catch (err) {
        await server.stop()
        throw err
      }
    }
  }
}
