// Prose for a generated file's header comment, wrapped the way the project's comments are: `// `
// lines of at most 104 characters, words never split.

const WIDTH = 104

/** `text` as `// ` comment lines (no trailing newline). */
export function commentBlock (text: string): string {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && line.length + 1 + word.length > WIDTH - 3) {
      lines.push(line)
      line = word
    } else {
      line = line === '' ? word : `${line} ${word}`
    }
  }
  if (line !== '') lines.push(line)
  return lines.map((l) => `// ${l}`).join('\n')
}
