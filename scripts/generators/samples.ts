// Values the generated tests write: two different valid bodies within every field's bounds (a create and
// a replace), one value per field the schema must refuse, and the store's form of a body.

import type { Field } from './fields.ts'

type Json = string | number | boolean | string[] | null

/** `text` cut or padded to a length within the field's bounds. */
function fit (text: string, min = 0, max = Infinity): string {
  const cut = text.slice(0, Math.max(1, max))
  return cut.length >= min ? cut : cut.padEnd(min, 'x')
}

const clamp = (value: number, min = -Infinity, max = Infinity): number => Math.min(Math.max(value, min), max)

/** A valid value; `variant` 0 and 1 differ wherever the bounds allow it. */
export function sampleValue (f: Field, variant: 0 | 1): Json {
  switch (f.kind) {
    case 'string': return fit(variant === 0 ? `${f.name} one` : `${f.name} two`, f.min, f.max)
    case 'integer': return clamp(variant + 1, f.min, f.max)
    case 'number': return clamp(variant + 1.5, f.min, f.max)
    case 'boolean': return variant === 1
    case 'date-time': return variant === 0 ? '2030-01-02T03:04:05.000Z' : '2031-06-07T08:09:10.000Z'
    case 'string[]': {
      const count = clamp(variant + 1, f.min, f.max)
      return Array.from({ length: count }, (_, i) => `${variant === 0 ? 'a' : 'b'}${i}`)
    }
  }
}

/** A body of valid values for every field (optional ones included). */
export function sampleBody (fields: readonly Field[], variant: 0 | 1): Record<string, Json> {
  return Object.fromEntries(fields.map((f) => [f.name, sampleValue(f, variant)]))
}

/** A value of the wrong type, which validation refuses (never coerced). */
export function wrongType (f: Field): Json {
  return { string: 42, integer: 'forty-two', number: 'forty-two', boolean: 'yes', 'date-time': 'not a date', 'string[]': 'not a list' }[f.kind] as Json
}

/** The store's form of a JSON body: times as epoch milliseconds. */
export function storeForm (fields: readonly Field[], body: Record<string, Json>): Record<string, Json> {
  return Object.fromEntries(fields.map((f) => {
    const value = body[f.name] ?? null
    return [f.name, f.kind === 'date-time' && typeof value === 'string' ? Date.parse(value) : value]
  }))
}

/** A JavaScript literal of a value (JSON, single-quoted strings as the project's style has them). */
export function literal (value: unknown): string {
  if (typeof value === 'string') return `'${value.replace(/\\/g, '\\\\').replace(/'/g, '\\\'')}'`
  if (Array.isArray(value)) return `[${value.map(literal).join(', ')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).map(([k, v]) => `${k}: ${literal(v)}`)
    return entries.length === 0 ? '{}' : `{ ${entries.join(', ')} }`
  }
  return String(value)
}
