// The Fastify server before any plugin: the logger (with what it must never print), request ids, body
// limit and timeouts, the proxies believed, and the transport — HTTPS + HTTP/2 with HTTP/1.1 through
// ALPN, or cleartext HTTP/1.1 with TLS=off. `createServer(config)` is the first line of `buildApp`.

import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { DestinationStream } from 'pino'
import type { Config } from './config.ts'
import { loadTlsMaterial, type TlsFiles, type TlsMaterial } from './tls.ts'
import { lazyChildLogger } from './request-logger.ts'
import { ensureDevCertificate } from './dev-cert.ts'
import { requestIdFor } from './request-id.ts'
import { redactCredentials, redactQueryTokens } from './log-redaction.ts'
import { clientErrorHandler, frameworkErrorHandler } from './error-handler.ts'
import { TracedLogController, traceLogFields } from '../telemetry/log-fields.ts'

export interface CreateServerOptions {
  /** Where logs go (default stdout). Tests pass a stream to read what was logged. */
  logStream?: DestinationStream
  /** Headers every error written before any hook runs must carry (the security headers). */
  errorHeaders?: Record<string, string>
}

export interface CreatedServer {
  server: FastifyInstance
  /** The certificate files served (to watch and reload); undefined with TLS=off. */
  tlsFiles?: TlsFiles
}

/** Strips query tokens (`access_token`, however its name is encoded) from a logged URL: browsers must send WebSocket/SSE tokens in the query. */
export function redactUrl (url: string): string {
  return redactQueryTokens(url)
}

function loggerOptions (config: Config, stream?: DestinationStream): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    ...(stream === undefined ? {} : { stream }),
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]', 'token', '*.token', 'access_token'],
      censor: '[REDACTED]'
    },
    serializers: {
      req (req: { method: string, url: string, ip?: string, socket?: { remoteAddress?: string } }) {
        return { method: req.method, url: redactUrl(req.url), remoteAddress: req.ip ?? req.socket?.remoteAddress }
      },
      // Logged as such by plugins (@fastify/websocket logs the `path` of an upgrade it refused).
      url: redactUrl,
      path: redactUrl
    },
    // Whatever a line holds (an error's message, a driver's reason), a URL in it loses its credentials.
    hooks: { streamWrite: redactCredentials },
    // While tracing runs, a line written inside a traced request carries its trace_id and span_id.
    ...(config.otel.enabled ? { mixin: traceLogFields } : {})
  }
}

/**
 * Fastify's own hop count refuses every forwarded address (it cannot check the peer), so a count
 * becomes "trust the nearest N hops": right only where nothing reaches the service but its proxies.
 */
function trustProxyOption (trust: Config['trustProxy']): FastifyServerOptions['trustProxy'] {
  if (typeof trust !== 'number') return trust
  return (_address: string, hop: number) => hop < trust
}

function commonOptions (config: Config, options: CreateServerOptions): FastifyServerOptions {
  const h = config.http
  return {
    logger: loggerOptions(config, options.logStream),
    ...(config.otel.enabled ? { logController: new TracedLogController() } : {}),
    // Each request's logger (with its reqId) is made on its first enabled line, not for every request.
    childLoggerFactory: lazyChildLogger as unknown as FastifyServerOptions['childLoggerFactory'],
    genReqId: requestIdFor,
    requestIdHeader: false,
    bodyLimit: h.bodyLimit,
    requestTimeout: h.requestTimeout,
    keepAliveTimeout: h.keepAliveTimeout,
    connectionTimeout: h.connectionTimeout,
    return503OnClosing: true,
    // Off unless TRUST_PROXY names the proxies: X-Forwarded-For is client-controlled.
    trustProxy: trustProxyOption(config.trustProxy),
    // Errors raised before any hook runs (a bad URL; the HTTP parser's 400, 408, 431) still leave as
    // problem+json with the security headers every other response gets.
    frameworkErrors: frameworkErrorHandler(options.errorHeaders ?? {}),
    clientErrorHandler: clientErrorHandler(options.errorHeaders ?? {})
  }
}

/** HTTP/2 over TLS 1.3 with HTTP/1.1 through ALPN on the same port. */
function secureOptions (config: Config, material: TlsMaterial): Record<string, unknown> {
  const h = config.http
  return {
    http2: true,
    http2SessionTimeout: h.http2SessionTimeout,
    https: {
      allowHTTP1: true,
      minVersion: 'TLSv1.3',
      cert: material.cert,
      key: material.key,
      ca: material.ca,
      requestCert: config.tls.clientAuth,
      rejectUnauthorized: config.tls.clientAuth,
      // Node's default is 120 s: a client that connects and never says hello would hold a descriptor that long.
      handshakeTimeout: h.tlsHandshakeTimeout,
      settings: { maxConcurrentStreams: h.http2MaxConcurrentStreams }
    }
  }
}

async function resolveTlsFiles (config: Config): Promise<{ files: TlsFiles, generated: boolean }> {
  const { certFile, keyFile, caFile } = config.tls
  if (certFile !== undefined && keyFile !== undefined) return { files: { certFile, keyFile, caFile }, generated: false }
  const dev = await ensureDevCertificate(config.certsDir)
  return { files: { certFile: dev.certFile, keyFile: dev.keyFile, caFile }, generated: dev.generated }
}

export async function createServer (config: Config, options: CreateServerOptions = {}): Promise<CreatedServer> {
  const h = config.http
  let server: FastifyInstance
  let tls: { files: TlsFiles, generated: boolean } | undefined
  if (config.tls.enabled) {
    tls = await resolveTlsFiles(config)
    // The raw server is an Http2SecureServer here and an http.Server with TLS=off; nothing above
    // the plugins touches it, so the app is typed as the common FastifyInstance.
    server = Fastify({ ...commonOptions(config, options), ...secureOptions(config, loadTlsMaterial(tls.files)) } as unknown as FastifyServerOptions) as unknown as FastifyInstance
  } else {
    server = Fastify(commonOptions(config, options))
  }
  // Fastify sets these on an http.Server only; the HTTP/1.1 side of the HTTP/2 server reads the same fields.
  // Node enforces headers/request timeouts on a sweep every `connectionsCheckingInterval` (30 s by
  // default, read at listen): once a second cuts a slowloris connection within headersTimeout + 1 s.
  Object.assign(server.server, {
    headersTimeout: h.headersTimeout,
    requestTimeout: h.requestTimeout,
    keepAliveTimeout: h.keepAliveTimeout,
    connectionsCheckingInterval: 1000
  })
  if (tls?.generated === true) server.log.info({ certFile: tls.files.certFile }, 'generated a self-signed development certificate (npm run certs regenerates it)')
  return { server, tlsFiles: tls?.files }
}
