// `npm run certs`: (re)generates the development certificate and key in certs/.
// A running server picks the new pair up without a restart (file watch or SIGHUP).

import { join } from 'node:path'
import { ensureDevCertificate } from '../core/dev-cert.ts'

const dir = join(process.cwd(), 'certs')
const { certFile, keyFile } = await ensureDevCertificate(dir, true)
process.stdout.write(`development certificate written: ${certFile}\nprivate key written: ${keyFile} (git-ignored; never commit it)\n`)
