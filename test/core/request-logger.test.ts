// LazyChildLogger: writes exactly what a pino child would, and makes no child for a request that logs
// nothing at the enabled levels.

import t from 'tap'
import { PassThrough } from 'node:stream'
import pino, { type Logger } from 'pino'
import { LazyChildLogger, lazyChildLogger } from '../../core/request-logger.ts'

function logger (level: string): { log: Logger, lines: () => Array<Record<string, unknown>> } {
  const stream = new PassThrough()
  let text = ''
  stream.on('data', (chunk: Buffer) => { text += chunk.toString() })
  const log = pino({ level, timestamp: false, redact: { paths: ['token'], censor: '[REDACTED]' } }, stream)
  return { log, lines: () => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) }
}

t.test('writes the same lines as a pino child with the same bindings and options', async (t) => {
  const eager = logger('info')
  const lazy = logger('info')
  const child = eager.log.child({ reqId: 'r-1' }, {})
  const wrapped = new LazyChildLogger(lazy.log, { reqId: 'r-1' }, {})
  for (const target of [child, wrapped]) {
    target.info({ token: 'secret', n: 1 }, 'with %s', 'args')
    target.debug('not written at info')
    target.warn('plain')
    target.error(new Error('boom'))
    target.child({ extra: true }).info('from a grandchild')
  }
  const strip = (lines: Array<Record<string, unknown>>): unknown => lines.map(({ pid: _pid, hostname: _host, err, ...rest }) =>
    ({ ...rest, err: err === undefined ? undefined : { ...(err as Record<string, unknown>), stack: undefined } }))
  t.strictSame(strip(lazy.lines()), strip(eager.lines()))
  t.equal(lazy.lines().length, 4)
  t.match(lazy.lines()[0], { reqId: 'r-1', token: '[REDACTED]', msg: 'with args' })
})

t.test('makes no child while only disabled levels are called', async (t) => {
  const { log } = logger('warn')
  let made = 0
  const parent = Object.create(log, { child: { value: (...args: Parameters<Logger['child']>) => { made++; return log.child(...args) } } }) as Logger
  const wrapped = new LazyChildLogger(parent, { reqId: 'r-2' }, {})
  wrapped.info('incoming request')
  wrapped.debug('detail')
  wrapped.trace('more detail')
  wrapped.silent()
  t.equal(made, 0)
  t.equal(wrapped.level, 'warn', 'the level is the parent\'s until a child exists')
  wrapped.warn('now it matters')
  wrapped.error('and again')
  t.equal(made, 1, 'one child, made on the first enabled line')
})

t.test('a level set on the request logger applies to it alone', async (t) => {
  const { log, lines } = logger('info')
  const wrapped = new LazyChildLogger(log, { reqId: 'r-3' }, {})
  wrapped.level = 'debug'
  t.equal(wrapped.level, 'debug')
  wrapped.debug('visible now')
  log.debug('parent still at info')
  t.same(lines().map((l) => l.msg), ['visible now'])
})

t.test('a route with its own log level gets a real child at once', async (t) => {
  const { log } = logger('info')
  t.type(lazyChildLogger(log, { reqId: 'r-4' }, {}), LazyChildLogger)
  const own = lazyChildLogger(log, { reqId: 'r-4' }, { level: 'error' })
  t.notOk(own instanceof LazyChildLogger)
  t.equal(own.level, 'error')
})

t.test('a request logger writes through its parent\'s serializers and stream hook (what redaction relies on)', async (t) => {
  const stream = new PassThrough()
  let text = ''
  stream.on('data', (chunk: Buffer) => { text += chunk.toString() })
  const parent = pino({
    level: 'info',
    serializers: { url: (url: string) => url.replace(/\?.*/, '?…') },
    hooks: { streamWrite: (line: string) => line.replaceAll('SECRETPW', '[REDACTED]') }
  }, stream)
  const wrapped = new LazyChildLogger(parent, { reqId: 'r-5' }, {})
  wrapped.info({ url: '/ws?access_token=abc' }, 'connect to redis://u:SECRETPW@h')
  t.notMatch(text, /SECRETPW|access_token/)
  t.match(JSON.parse(text), { reqId: 'r-5', url: '/ws?…', msg: 'connect to redis://u:[REDACTED]@h' })
})
