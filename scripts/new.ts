// `npm run new -- resource|event|plugin <name> [options]`: generates a complete, tested piece of the
// service from a model (scripts/generators/), never by rewriting an existing one. Everything is
// checked before anything is written: a name already taken, a bad argument or a missing anchor in
// app.ts or core/config.ts is one line on stderr, exit 1, and no file changed.

import { parseArgs } from 'node:util'
import { resolve } from 'node:path'
import { FIELD_SYNTAX } from './generators/fields.ts'
import { GeneratorError, applyPlan, type Plan } from './generators/plan.ts'
import { resourceModel, resourcePlan } from './generators/resource.ts'
import { eventPlan } from './generators/event.ts'
import { pluginPlan } from './generators/plugin.ts'

const USAGE = 'usage: npm run new -- resource <plural-name> [--fields \'title:string(1..200),done:boolean,due?:date-time\'] [--scope-prefix p] [--singular s] [--no-realtime]' +
  ' | event <room:verb> | plugin <name>'

const OPTIONS = {
  fields: { type: 'string' },
  'scope-prefix': { type: 'string' },
  singular: { type: 'string' },
  'no-realtime': { type: 'boolean' }
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS, allowPositionals: true }>>['values']

/** Resource options are for resources only: elsewhere they are a mistake, not something to ignore. */
function onlyForResources (kind: string, values: Values): void {
  const given = Object.keys(values)
  if (kind !== 'resource' && given.length > 0) throw new GeneratorError(`--${given[0]!} applies to resources only; ${USAGE}`)
}

function planFor (root: string, args: string[]): Plan {
  let parsed
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true })
  } catch (err) {
    // parseArgs adds a paragraph of advice after the first sentence: the sentence is enough here.
    throw new GeneratorError(`${(err as Error).message.split(/\.\s|\n/)[0]!}; ${USAGE}`)
  }
  const { values, positionals } = parsed
  const [kind, name, ...extra] = positionals
  if (name === undefined || extra.length > 0) throw new GeneratorError(USAGE)
  onlyForResources(kind ?? '', values)
  switch (kind) {
    case 'resource': {
      if (values.fields !== undefined && values.fields.trim() === '') throw new GeneratorError(`--fields is empty; expected ${FIELD_SYNTAX}`)
      return resourcePlan(resourceModel(root, {
        name, fields: values.fields, scopePrefix: values['scope-prefix'], singular: values.singular, realtime: values['no-realtime'] !== true
      }))
    }
    case 'event': return eventPlan(root, name)
    case 'plugin': return pluginPlan(root, name)
    default: throw new GeneratorError(USAGE)
  }
}

function main (): void {
  const root = resolve(import.meta.dirname, '..')
  try {
    const { created, edited } = applyPlan(root, planFor(root, process.argv.slice(2)))
    for (const path of created) console.log(`created ${path}`)
    for (const path of edited) console.log(`edited  ${path}`)
  } catch (err) {
    if (!(err instanceof GeneratorError)) throw err
    console.error(err.message)
    process.exitCode = 1
  }
}

main()
