// What a generator produces: new files and edits of existing ones, all computed in memory first. The
// plan is written only once every target has been checked — a file to create that already exists, or
// an edit whose anchor is missing, stops the run before anything changes on disk.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

/** A refusal the user can act on: printed as one line, exit code 1, nothing written. */
export class GeneratorError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'GeneratorError'
  }
}

/** An edit of an existing file: its new text computed from its current text (throws when an anchor is missing). */
export type Edit = (text: string) => string

export interface Plan {
  /** Paths relative to the project root → their contents. */
  readonly files: Map<string, string>
  /** Paths relative to the project root → how each changes. */
  readonly edits: Map<string, Edit>
}

export function emptyPlan (): Plan {
  return { files: new Map(), edits: new Map() }
}

/**
 * Checks every target, then writes: refuses (one line, nothing written) when a file to create exists
 * or a file to edit is missing or has lost its anchor. Resolves with the paths created and edited.
 */
export function applyPlan (root: string, plan: Plan): { created: string[], edited: string[] } {
  const existing = [...plan.files.keys()].filter((path) => existsSync(join(root, path)))
  if (existing.length > 0) {
    throw new GeneratorError(`refusing: ${existing[0]} already exists${existing.length > 1 ? ` (and ${existing.length - 1} more of the files to create)` : ''}; nothing was changed`)
  }
  const edited = new Map<string, string>()
  for (const [path, edit] of plan.edits) {
    const file = join(root, path)
    if (!existsSync(file)) throw new GeneratorError(`refusing: ${path} is missing; nothing was changed`)
    edited.set(path, edit(readFileSync(file, 'utf8')))
  }
  for (const [path, text] of plan.files) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), text)
  }
  for (const [path, text] of edited) writeFileSync(join(root, path), text)
  return { created: [...plan.files.keys()], edited: [...edited.keys()] }
}
