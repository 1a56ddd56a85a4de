// The OTEL_* variables as an operator meets them: validated with the rest of the configuration, so a
// bad value stops the real entry point with exit 1 and one line naming the variable and the expected
// form — never the value of the collector's headers, nor the credentials of an endpoint URL.

import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig, ConfigError } from '../../core/config.ts'
import { ROOT, spawnServer, tempDir } from '../helpers/app.ts'

const badStarts: Array<[string, Record<string, string>, RegExp]> = [
  ['an endpoint that is not a URL', { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, /OTEL_EXPORTER_OTLP_ENDPOINT .*"collector:4318".*expected an http\(s\) URL/],
  ['a traces endpoint that does not parse', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:99999/v1/traces' }, /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is not a valid URL/],
  ['a protocol without its exporter', { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, /OTEL_EXPORTER_OTLP_PROTOCOL .*"grpc".*expected one of http\/json/],
  ['an unknown sampler', { OTEL_TRACES_SAMPLER: 'sometimes' }, /OTEL_TRACES_SAMPLER .*"sometimes".*expected one of always_on, always_off, traceidratio/],
  ['a ratio above 1', { OTEL_TRACES_SAMPLER_ARG: '1.5' }, /OTEL_TRACES_SAMPLER_ARG .*"1\.5".*expected a number 0–1/],
  ['a ratio that is not a number', { OTEL_TRACES_SAMPLER_ARG: 'half' }, /OTEL_TRACES_SAMPLER_ARG .*"half"/],
  ['a resource attribute list not in key=value form', { OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment' }, /OTEL_RESOURCE_ATTRIBUTES .*expected comma-separated key=value pairs/],
  ['a resource attribute badly percent-encoded', { OTEL_RESOURCE_ATTRIBUTES: 'team=a%zz' }, /OTEL_RESOURCE_ATTRIBUTES has a value that is not percent-encoded for key "team"/],
  ['an SDK switch that is not a boolean', { OTEL_SDK_DISABLED: 'yes' }, /OTEL_SDK_DISABLED .*"yes".*expected true or false/],
  ['a service name over 255 characters', { OTEL_SERVICE_NAME: 'x'.repeat(256) }, /OTEL_SERVICE_NAME .*expected a service name, 1–255 characters/],
  ['an export delay out of range', { OTEL_BSP_SCHEDULE_DELAY: '0' }, /OTEL_BSP_SCHEDULE_DELAY .*expected milliseconds/]
]

for (const [what, env, message] of badStarts) {
  t.test(`${what} stops the start with exit 1 and one line`, async (t) => {
    const server = spawnServer(t, env)
    t.equal(await server.exited, 1)
    const lines = server.output().trim().split('\n')
    t.equal(lines.length, 1, `one line: ${server.output()}`)
    t.match(lines[0], message)
    t.notMatch(server.output(), /\n\s+at /, 'no stack trace')
  })
}

t.test('the collector\'s headers are a secret: a bad value is refused without being shown', async (t) => {
  for (const headers of ['x-honeycomb-team hunter2-api-key', 'x-api-key=%hunter2']) {
    const err = (() => { try { loadConfig({ OTEL_EXPORTER_OTLP_HEADERS: headers }, tempDir()) } catch (e) { return e } })()
    t.ok(err instanceof ConfigError)
    t.match((err as ConfigError).message, /^invalid configuration: OTEL_EXPORTER_OTLP_HEADERS /)
    t.notMatch((err as ConfigError).message, /hunter2/)
  }
})

t.test('an endpoint URL\'s credentials are hidden in the error', async (t) => {
  const server = spawnServer(t, { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://user:s3cret@collector:99999' })
  t.equal(await server.exited, 1)
  t.match(server.output(), /OTEL_EXPORTER_OTLP_ENDPOINT is not a valid URL "https:\/\/\[credentials hidden\]@collector:99999"/)
  t.notMatch(server.output(), /s3cret/)
})

t.test('defaults: tracing off, the package\'s name as the service name, the parent-based always-on sampler', async (t) => {
  const { otel } = loadConfig({}, tempDir())
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string, version: string }
  t.same(otel, {
    enabled: false,
    tracesUrl: undefined,
    protocol: 'http/json',
    headers: {},
    serviceName: pkg.name,
    serviceVersion: pkg.version,
    sampler: 'parentbased_always_on',
    samplerRatio: 1,
    resourceAttributes: {},
    exportDelayMs: 5000
  })
})

t.test('the endpoint turns tracing on; /v1/traces is appended to it, the traces endpoint is used as is', async (t) => {
  const on = loadConfig({
    OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector.example:4318/',
    OTEL_EXPORTER_OTLP_HEADERS: 'x-honeycomb-team=abc%20def,x-other = 1',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,team=a%2Cb',
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.25'
  }, tempDir()).otel
  t.match(on, {
    enabled: true,
    tracesUrl: 'https://collector.example:4318/v1/traces',
    headers: { 'x-honeycomb-team': 'abc def', 'x-other': '1' },
    resourceAttributes: { 'deployment.environment': 'prod', team: 'a,b' },
    sampler: 'parentbased_traceidratio',
    samplerRatio: 0.25
  })
  const traces = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom' }, tempDir()).otel
  t.equal(traces.tracesUrl, 'http://b:4318/custom')
  t.equal(loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom' }, tempDir()).otel.enabled, true)
  t.equal(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_SDK_DISABLED: 'true' }, tempDir()).otel.enabled, false)
})
