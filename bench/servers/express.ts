// The peer most services start from: Express 5 with the middleware equivalent to Keel's edge stack —
// helmet, cors, express-rate-limit, compression (same 1 KiB threshold), Express's built-in weak ETag —
// and jsonwebtoken verifying HS256 bearer tokens on the protected route.

import { once } from 'node:events'
import express, { type NextFunction, type Request, type Response } from 'express'
import helmet from 'helmet'
import cors from 'cors'
import { rateLimit } from 'express-rate-limit'
import compression from 'compression'
import jwt from 'jsonwebtoken'
import { announceListening, closeOnSignal } from '../lib/serve.ts'
import {
  BENCH_JWT_SECRET, BENCH_ORIGIN, BENCH_RATE_LIMIT, LARGE_PATH, ME_PATH, PRIVATE_CACHE_CONTROL, PUBLIC_CACHE_CONTROL, SMALL_PATH,
  largeBody, smallBody
} from '../lib/workload.ts'

const BEARER = /^Bearer +(\S+)$/i

function requireToken (req: Request, res: Response, next: NextFunction): void {
  const token = BEARER.exec(req.headers.authorization ?? '')?.[1]
  try {
    if (token === undefined) throw new Error('no token')
    const claims = jwt.verify(token, BENCH_JWT_SECRET, { algorithms: ['HS256'] }) as jwt.JwtPayload
    res.locals.user = { sub: claims.sub, scopes: typeof claims.scope === 'string' ? claims.scope.split(' ') : [] }
    next()
  } catch {
    res.status(401).set('www-authenticate', 'Bearer realm="bench"').json({ title: 'Unauthorized', status: 401 })
  }
}

const app = express()
app.set('etag', 'weak')
app.use(helmet())
app.use(cors({ origin: [BENCH_ORIGIN], credentials: true }))
app.use(rateLimit({ windowMs: BENCH_RATE_LIMIT.windowMs, limit: BENCH_RATE_LIMIT.max, standardHeaders: 'draft-7', legacyHeaders: false }))
app.use(compression({ threshold: 1024 }))

app.get(SMALL_PATH, (_req, res) => { res.set('cache-control', PUBLIC_CACHE_CONTROL).json(smallBody) })
app.get(LARGE_PATH, (_req, res) => { res.set('cache-control', PUBLIC_CACHE_CONTROL).json(largeBody) })
app.get(ME_PATH, requireToken, (_req, res) => { res.set('cache-control', PRIVATE_CACHE_CONTROL).json(res.locals.user) })

const server = app.listen(0, '127.0.0.1')
await once(server, 'listening')
await announceListening(server)
closeOnSignal(async () => {
  server.closeAllConnections()
  server.close()
})
