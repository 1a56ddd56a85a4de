// Lint rules: neostandard (the Fastify team's standard style) with TypeScript support.
import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['node_modules', 'coverage', '.tap', 'data', 'certs/*.pem', 'client/dist'] }),
  {
    // `const X = {...} as const` + `type X = ...` is our erasable replacement for enums.
    rules: { '@typescript-eslint/no-redeclare': 'off', 'no-redeclare': 'off' }
  },
  {
    // Small pieces: a server function over 80 lines is split, or says why it cannot be (and disables
    // this rule on that line). Tests and the bench read better as long scripts, so they are exempt.
    ignores: ['test/**', 'bench/**'],
    rules: { 'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true, IIFEs: true }] }
  }
]
