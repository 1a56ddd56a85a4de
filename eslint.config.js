// Lint rules: neostandard (the Fastify team's standard style) with TypeScript support.
import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['node_modules', 'coverage', '.tap', 'data', 'certs/*.pem'] }),
  {
    // `const X = {...} as const` + `type X = ...` is our erasable replacement for enums.
    rules: { '@typescript-eslint/no-redeclare': 'off', 'no-redeclare': 'off' }
  }
]
