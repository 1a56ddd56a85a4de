// Per-request loggers made on first use. Fastify gives every request a pino child logger carrying its
// request id; making one serializes the bindings through the redaction (about 3 µs a request), paid
// even when the request logs nothing at the configured level (LOG_LEVEL=warn: most requests). This
// logger answers calls at disabled levels with nothing and makes the real child, with the same bindings
// and options, for the first enabled line, so what is written is exactly what the child would write.

import type { Bindings, ChildLoggerOptions, Logger } from 'pino'

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
type LogArgs = [unknown, ...unknown[]]

export class LazyChildLogger {
  readonly #parent: Logger
  readonly #bindings: Bindings
  readonly #options: ChildLoggerOptions
  #child: Logger | undefined

  constructor (parent: Logger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent
    this.#bindings = bindings
    this.#options = options
  }

  #real (): Logger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options)
    return this.#child
  }

  #log (level: Level, args: LogArgs): void {
    // Until the child exists its level is the parent's (a pino child without its own level follows it).
    const logger = this.#child ?? (this.#parent.isLevelEnabled(level) ? this.#real() : undefined)
    if (logger === undefined) return
    const write = logger[level] as (...a: LogArgs) => void
    write.apply(logger, args)
  }

  get level (): string { return (this.#child ?? this.#parent).level }
  set level (level: string) { this.#real().level = level }

  fatal (...args: LogArgs): void { this.#log('fatal', args) }
  error (...args: LogArgs): void { this.#log('error', args) }
  warn (...args: LogArgs): void { this.#log('warn', args) }
  info (...args: LogArgs): void { this.#log('info', args) }
  debug (...args: LogArgs): void { this.#log('debug', args) }
  trace (...args: LogArgs): void { this.#log('trace', args) }
  silent (): void {}

  child (bindings: Bindings, options?: ChildLoggerOptions): Logger {
    return this.#real().child(bindings, options)
  }
}

/**
 * For Fastify's `childLoggerFactory`. A route with its own log level gets a real child at once: its
 * level is not the parent's, and such routes are rare.
 */
export function lazyChildLogger (parent: Logger, bindings: Bindings, options: ChildLoggerOptions): Logger | LazyChildLogger {
  return options.level === undefined ? new LazyChildLogger(parent, bindings, options) : parent.child(bindings, options)
}
