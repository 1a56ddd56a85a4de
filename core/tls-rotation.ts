// Certificate rotation without restart: `fastify.reloadTls()` swaps the server's secure context
// for new connections; open connections and HTTP/2 sessions keep the context they started with.
// Called on SIGHUP (server.ts) and when the PEM files change. A broken new pair is logged and the
// old one kept — a bad deploy of certificates must never take the listener down.

import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import type { Server as TlsServer } from 'node:tls'
import fp from 'fastify-plugin'
import { loadTlsMaterial, contextOptions, type TlsFiles } from './tls.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Reloads the certificate files; returns false (and keeps the old pair) when they are unusable. */
    reloadTls: () => boolean
  }
}

export interface TlsRotationOptions {
  files: TlsFiles
  /** Watch the files and reload on change (debounced). */
  watchFiles: boolean
}

// Writers replace cert and key one after the other; wait for both before reading.
const WATCH_DEBOUNCE_MS = 200

export default fp<TlsRotationOptions>(async function tlsRotation (fastify, opts) {
  const reloadTls = (): boolean => {
    try {
      const material = loadTlsMaterial(opts.files)
      ;(fastify.server as unknown as TlsServer).setSecureContext(contextOptions(material))
      fastify.log.info({ certFile: opts.files.certFile }, 'TLS certificate reloaded')
      return true
    } catch (err) {
      fastify.log.error({ certFile: opts.files.certFile, reason: (err as Error).message }, 'TLS reload failed; keeping the current certificate')
      return false
    }
  }
  fastify.decorate('reloadTls', reloadTls)

  if (!opts.watchFiles) return
  const watchers: FSWatcher[] = []
  let timer: NodeJS.Timeout | undefined
  const names = new Set([opts.files.certFile, opts.files.keyFile, opts.files.caFile].filter((f) => f !== undefined).map((f) => basename(f)))
  // A Kubernetes Secret or ConfigMap volume never rewrites its files: it swaps the `..data` symlink
  // they point through (how cert-manager's renewals arrive), so that name is a change of the pair too.
  names.add('..data')
  // Watch directories, not files: a rename-into-place (how most tools write) replaces the inode.
  for (const dir of new Set([opts.files.certFile, opts.files.keyFile].map((f) => dirname(f)))) {
    const watcher = watch(dir, (_event, name) => {
      if (name === null || !names.has(name)) return
      clearTimeout(timer)
      timer = setTimeout(reloadTls, WATCH_DEBOUNCE_MS)
    })
    watcher.unref()
    watchers.push(watcher)
  }
  fastify.addHook('onClose', async () => {
    clearTimeout(timer)
    for (const w of watchers) w.close()
  })
}, { name: 'keel-tls-rotation' })
