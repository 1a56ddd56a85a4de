// Taking the example resources out of a checkout: which folders they are, the composition root
// without their imports and registrations, and Markdown without the passages marked as theirs.
// Pure functions over text; scripts/init.ts does the file work.

import ts from 'typescript'

/** The example resources and their tests: removing a resource is removing its folders and its lines in app.ts. */
export const EXAMPLE_FOLDERS = ['resources/items', 'resources/quotes', 'test/resources/items', 'test/resources/quotes'] as const

/** Markdown between these two lines (both included) describes the examples and goes with them. */
export const EXAMPLES_START = '<!-- examples:start -->'
export const EXAMPLES_END = '<!-- examples:end -->'

/**
 * `source` (a module such as app.ts) without its imports from `folders` (paths from the module's own
 * folder, e.g. `resources/items`) and without the statements that use what those imports bound.
 */
export function withoutImportsFrom (source: string, folders: readonly string[], path = 'app.ts'): string {
  const file = ts.createSourceFile(path, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const removed = new Set<string>()
  const cut: ts.Node[] = []
  for (const statement of file.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier)) continue
    const from = statement.moduleSpecifier.text.replace(/^\.\//, '')
    if (!folders.some((folder) => from.startsWith(`${folder}/`))) continue
    cut.push(statement)
    for (const name of boundNames(statement)) removed.add(name)
  }
  if (cut.length === 0) return source
  collectUses(file.statements, removed, cut)
  return cutLines(source, file, cut)
}

function boundNames (declaration: ts.ImportDeclaration): string[] {
  const clause = declaration.importClause
  if (clause === undefined) return []
  const names = clause.name === undefined ? [] : [clause.name.text]
  const bindings = clause.namedBindings
  if (bindings !== undefined && ts.isNamespaceImport(bindings)) names.push(bindings.name.text)
  if (bindings !== undefined && ts.isNamedImports(bindings)) names.push(...bindings.elements.map((e) => e.name.text))
  return names
}

/** Statements that use one of `names`, looking inside function bodies rather than removing whole functions. */
function collectUses (statements: ts.NodeArray<ts.Statement>, names: ReadonlySet<string>, cut: ts.Node[]): void {
  for (const statement of statements) {
    if (ts.isImportDeclaration(statement)) continue
    if (ts.isFunctionDeclaration(statement)) {
      if (statement.body !== undefined) collectUses(statement.body.statements, names, cut)
    } else if (uses(statement, names)) {
      cut.push(statement)
    }
  }
}

function uses (node: ts.Node, names: ReadonlySet<string>): boolean {
  if (ts.isIdentifier(node) && names.has(node.text)) return true
  return ts.forEachChild(node, (child) => uses(child, names) ? true : undefined) ?? false
}

/** `source` without the whole lines the nodes occupy, and without the blank line doubled where they were. */
function cutLines (source: string, file: ts.SourceFile, nodes: readonly ts.Node[]): string {
  const lines = source.split('\n')
  const gone = new Set<number>()
  for (const node of nodes) {
    const first = file.getLineAndCharacterOfPosition(node.getStart(file)).line
    const last = file.getLineAndCharacterOfPosition(node.getEnd()).line
    for (let line = first; line <= last; line++) gone.add(line)
  }
  const kept = lines.filter((_, i) => !gone.has(i))
  return kept.filter((line, i) => !(line.trim() === '' && kept[i - 1]?.trim() === '' && i > 0)).join('\n')
}

/** `markdown` without the passages between EXAMPLES_START and EXAMPLES_END lines (markers included). */
export function withoutExamplePassages (markdown: string): string {
  const lines = markdown.split('\n')
  const kept: string[] = []
  let inside = false
  for (const line of lines) {
    if (line.trim() === EXAMPLES_START) inside = true
    else if (line.trim() === EXAMPLES_END && inside) inside = false
    else if (!inside) kept.push(line)
  }
  return kept.join('\n').replace(/\n{3,}/g, '\n\n')
}
