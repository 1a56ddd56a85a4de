// Start-up configuration as an operator meets it: every bad value stops the real entry point with
// exit code 1 and one line naming the variable and the expected form; no stack trace.

import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig, ConfigError } from '../../core/config.ts'
import { spawnServer, tempDir } from '../helpers/app.ts'

const badStarts: Array<[string, Record<string, string>, RegExp]> = [
  ['a port that is not a number', { PORT: 'eighty' }, /PORT .*"eighty".*expected an integer 0–65535/],
  ['a port out of range', { PORT: '70000' }, /PORT .*"70000"/],
  ['an unreadable certificate file', { TLS_CERT_FILE: '/nonexistent/cert.pem', TLS_KEY_FILE: '/nonexistent/key.pem' }, /TLS_CERT_FILE "\/nonexistent\/cert.pem" is not a readable file/],
  ['only the certificate of the pair', { TLS_CERT_FILE: '/etc/hostname' }, /TLS_KEY_FILE is missing while its pair is set/],
  ['an unknown TLS value', { TLS: 'maybe' }, /TLS .*"maybe".*expected one of on, off/],
  ['a bad number', { RATE_LIMIT_MAX: '12abc' }, /RATE_LIMIT_MAX .*"12abc".*expected a positive integer/],
  ['a fractional port', { PORT: '1.5' }, /PORT .*"1\.5".*expected an integer/],
  ['mutual TLS without a CA', { TLS_CLIENT_AUTH: 'require' }, /TLS_CA_FILE is missing while TLS_CLIENT_AUTH=require/],
  ['production without a token verification setting', { NODE_ENV: 'production', TLS: 'off', JWT_SECRET: '' }, /JWT_SECRET is missing in production/],
  // Production never serves generated development material: provide the pair, or terminate TLS at a proxy.
  ['production without TLS files', { NODE_ENV: 'production' }, /TLS_CERT_FILE is missing in production .*TLS=off/],
  ['a TRUST_PROXY entry that is not an address', { TRUST_PROXY: '10.0.0.0/8,proxy.example' }, /TRUST_PROXY has an entry that is not an address or CIDR/]
]

for (const [what, env, message] of badStarts) {
  t.test(`${what} stops the start with exit 1 and one line`, async (t) => {
    const server = spawnServer(t, env)
    const code = await server.exited
    t.equal(code, 1)
    const lines = server.output().trim().split('\n')
    t.equal(lines.length, 1, `one line: ${server.output()}`)
    t.match(lines[0], message)
    t.notMatch(server.output(), /\n\s+at /, 'no stack trace')
  })
}

t.test('a certificate that does not parse stops the start with one line', async (t) => {
  const dir = tempDir()
  writeFileSync(join(dir, 'c.pem'), 'not a certificate')
  writeFileSync(join(dir, 'k.pem'), 'not a key')
  const server = spawnServer(t, { TLS_CERT_FILE: join(dir, 'c.pem'), TLS_KEY_FILE: join(dir, 'k.pem') }, dir)
  t.equal(await server.exited, 1)
  t.equal(server.output().trim().split('\n').length, 1)
  t.match(server.output(), /^keel: cannot start: /)
})

t.test('defaults are the embedded defaults npm start runs on', async (t) => {
  const config = loadConfig({}, tempDir())
  t.equal(config.host, '127.0.0.1')
  t.equal(config.port, 3000)
  t.equal(config.tls.enabled, true)
  t.equal(config.database.file, 'data/keel.db')
  t.same(config.cors.origins, [])
  t.same(config.rateLimit, { max: 300, windowMs: 60_000, failOpen: true })
  t.equal(config.shutdownTimeoutMs, 10_000)
  t.equal(config.logLevel, 'info')
})

t.test('.env is read from the working directory and the environment wins', async (t) => {
  const dir = tempDir()
  writeFileSync(join(dir, '.env'), '# comment\nPORT=4100\nLOG_LEVEL="debug"\nCORS_ORIGINS=https://a.example, https://b.example\n')
  const config = loadConfig({ LOG_LEVEL: 'warn' }, dir)
  t.equal(config.port, 4100)
  t.equal(config.logLevel, 'warn')
  t.same(config.cors.origins, ['https://a.example', 'https://b.example'])
})

t.test('a bad value is a ConfigError naming the variable', async (t) => {
  t.throws(() => loadConfig({ CORS_ORIGINS: 'https://ok.example,not a url' }, tempDir()), { name: 'ConfigError', variable: 'CORS_ORIGINS' })
  t.throws(() => loadConfig({ PORT: '-1' }, tempDir()), ConfigError)
  t.throws(() => loadConfig({ JWT_SECRET: 'x'.repeat(32), JWKS_URL: 'https://idp.example/jwks' }, tempDir()), /exactly one of/)
})

t.test('WebSocket limits: documented defaults, and a pong timeout not below the ping interval is refused', async (t) => {
  const config = loadConfig({}, tempDir())
  t.same(config.ws, {
    maxPayloadBytes: 65_536,
    pingIntervalMs: 30_000,
    pongTimeoutMs: 10_000,
    messageRate: 20,
    messageBurst: 40,
    rateCloseAfter: 20,
    maxConnectionsPerUser: 10,
    maxRoomsPerConnection: 100,
    maxBufferedBytes: 1_048_576,
    slowConsumer: 'close',
    closeGraceMs: 2000,
    historySize: 100,
    historyMaxAgeMs: 600_000,
    historyMaxRooms: 1000,
    historyMaxBytes: 33_554_432,
    historyMaxMessageBytes: 16_384,
    publishDedupMs: 120_000,
    presenceTtlMs: 30_000
  })
  t.same(config.sse, { heartbeatMs: 15_000, maxBufferedBytes: 1_048_576, maxRooms: 100 })
  t.throws(() => loadConfig({ WS_PING_INTERVAL_MS: '1000', WS_PONG_TIMEOUT_MS: '1000' }, tempDir()),
    { name: 'ConfigError', variable: 'WS_PONG_TIMEOUT_MS', message: /is not below WS_PING_INTERVAL_MS/ })
  t.throws(() => loadConfig({ WS_SLOW_CONSUMER: 'block' }, tempDir()), { name: 'ConfigError', variable: 'WS_SLOW_CONSUMER', message: /one of close, drop/ })
  t.throws(() => loadConfig({ WS_MAX_PAYLOAD_BYTES: '10' }, tempDir()), { name: 'ConfigError', variable: 'WS_MAX_PAYLOAD_BYTES' })
})

// Secrets in a bad configuration: the line names the variable and the problem, never the value.
const secretStarts: Array<[string, Record<string, string>, string]> = [
  ['a JWT_SECRET that is too short', { JWT_SECRET: 'short-but-secret-value-31-chars' }, 'short-but-secret-value-31-chars'],
  ['a REDIS_URL whose form is wrong', { REDIS_URL: 'redis://user:hunter2-pass@bad host:6379' }, 'hunter2-pass'],
  ['a JWKS_URL whose form is wrong', { JWT_SECRET: '', JWKS_URL: 'ftp://svc:jwks-pass-77@idp.example/keys' }, 'jwks-pass-77'],
  ['a REDIS_URL that does not parse', { REDIS_URL: 'redis://u:parse-pass-42@127.0.0.1:99999/0' }, 'parse-pass-42'],
  ['an UPSTREAM_QUOTES_URL whose form is wrong', { UPSTREAM_QUOTES_URL: 'gopher://svc:quote-pass-99@up.example' }, 'quote-pass-99']
]
for (const [what, env, secret] of secretStarts) {
  t.test(`configuration errors print no secrets: ${what}`, async (t) => {
    const server = spawnServer(t, env)
    t.equal(await server.exited, 1)
    const variable = Object.keys(env).find((k) => env[k] !== '')!
    t.match(server.output(), new RegExp(`^keel: invalid configuration: ${variable} `), 'names the variable')
    t.notOk(server.output().includes(secret), `the secret is in no line: ${server.output()}`)
  })
}

t.test('TRUST_PROXY: off by default, a hop count, or a list of addresses and CIDRs', async (t) => {
  t.equal(loadConfig({}, tempDir()).trustProxy, false)
  t.equal(loadConfig({ TRUST_PROXY: 'off' }, tempDir()).trustProxy, false)
  t.equal(loadConfig({ TRUST_PROXY: '1' }, tempDir()).trustProxy, 1)
  t.same(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 192.168.1.7,::1,fd00::/8,loopback' }, tempDir()).trustProxy,
    ['10.0.0.0/8', '192.168.1.7', '::1', 'fd00::/8', 'loopback'])
  for (const bad of ['10.0.0.0/33', 'true', '1.2.3', '::1/129', '10.0.0.0/8/1']) {
    t.throws(() => loadConfig({ TRUST_PROXY: bad }, tempDir()), { name: 'ConfigError', variable: 'TRUST_PROXY' }, bad)
  }
})
