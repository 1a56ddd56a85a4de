// What the logger removes from every line: tokens in a URL's query, by the name the query parser
// decodes, and the credentials of any URL — cheaply, and in linear time on hostile input.

import t from 'tap'
import { redactCredentials, redactQueryTokens } from '../../core/log-redaction.ts'
import { build } from '../helpers/app.ts'

t.test('a token query parameter is redacted by its decoded name, however the name is encoded', async (t) => {
  const cases: Array<[string, string]> = [
    ['/ws?access_token=abc', '/ws?access_token=[REDACTED]'],
    ['/sse?room=a&access%5Ftoken=abc&x=1', '/sse?room=a&access%5Ftoken=[REDACTED]&x=1'],
    ['/sse?%61ccess_token=abc', '/sse?%61ccess_token=[REDACTED]'],
    ['/sse?ACCESS%5ftoken=abc&access%5ftoken=def', '/sse?ACCESS%5ftoken=abc&access%5ftoken=[REDACTED]'],
    ['/x?access_token=a&access_token=b', '/x?access_token=[REDACTED]&access_token=[REDACTED]'],
    ['/x?refresh_token=a&id_token=b', '/x?refresh_token=[REDACTED]&id_token=[REDACTED]'],
    ['/x?access_token', '/x?access_token=[REDACTED]']
  ]
  for (const [url, logged] of cases) t.equal(redactQueryTokens(url), logged, url)
})

t.test('other URLs are returned as they are (the same string, no work for a URL without a query)', async (t) => {
  for (const url of ['/api/v1/items', '/api/v1/items?limit=10', '/x?token_count=1&access_tokens=2', '/x?a=%ZZ&access%ZZtoken=1', '/x?access+token=1']) {
    t.equal(redactQueryTokens(url), url, url)
  }
})

t.test('the credentials of every URL in a text are redacted, up to the last @ of the authority', async (t) => {
  const cases: Array<[string, string]> = [
    ['connect redis://keel:pw@127.0.0.1:6379/0 failed', 'connect redis://[REDACTED]@127.0.0.1:6379/0 failed'],
    ['rediss://:p@ss@host/0', 'rediss://[REDACTED]@host/0'],
    ['{"a":"https://u:p@h/x","b":"http://v@w"}', '{"a":"https://[REDACTED]@h/x","b":"http://[REDACTED]@w"}'],
    ['{"msg":"postgres://u:p\\"q@db/x"}', '{"msg":"postgres://[REDACTED]@db/x"}'],
    ['http://host/path?x=a@b mail me@example.com', 'http://host/path?x=a@b mail me@example.com'],
    ['no url here, just me@example.com', 'no url here, just me@example.com']
  ]
  for (const [text, logged] of cases) t.equal(redactCredentials(text), logged, text)
})

t.test('redacting credentials takes linear time on a hostile line', async (t) => {
  const hostile = `@${'a://b'.repeat(20_000)}${'x'.repeat(100_000)}`
  const started = process.hrtime.bigint()
  redactCredentials(hostile)
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  t.ok(ms < 200, `took ${ms.toFixed(1)} ms for ${hostile.length} characters`)
})

t.test('the app\'s logger writes no URL credentials, wherever a line carries them (message, error, any field)', async (t) => {
  const { app, logs } = await build(t, { LOG_LEVEL: 'info' })
  const url = 'redis://keel:SECRETPW@127.0.0.1:6379/0'
  let invalid: unknown
  try {
    new URL(`${url} with a space`) // eslint-disable-line no-new
  } catch (err) {
    invalid = err // Node's URL error carries the whole input in a property
  }
  app.log.warn({ reason: `cannot reach ${url}` }, 'Redis unreachable')
  app.log.error({ err: invalid }, 'parsing failed')
  app.log.error({ err: new Error(`connect to ${url} failed`, { cause: new Error(url) }) }, 'request failed')
  app.log.info(`connecting to ${url}`)
  const child = app.log.child({ target: url })
  child.info('from a child logger')
  const text = logs.text()
  t.notOk(text.includes('SECRETPW'), 'no password in the output')
  t.equal(text.split('redis://[REDACTED]@127.0.0.1:6379/0').length - 1 >= 5, true, 'each URL kept, without its credentials')
})
