// The Kubernetes manifests (deploy/k8s): the base and the example overlay, built as `kubectl apply -k`
// would build them (test/helpers/kustomize.ts), validated offline against the Kubernetes schemas and
// the API's cross-object rules, and held to what a safe rollout of Keel needs.

import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { EnvSchema, loadConfig } from '../../core/config.ts'
import { createSelfSignedCertificate } from '../../core/dev-cert.ts'
import { ROOT, TEST_JWT_SECRET, tempDir } from '../helpers/app.ts'
import type { IDeployment } from 'kubernetes-models/apps/v1'
import type { IConfigMap, IContainer, INamespace, ISecret, IService } from 'kubernetes-models/v1'
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1'
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import { kustomizeBuild, type K8sObject } from '../helpers/kustomize.ts'
import { validateManifests, ofKind, quantity } from '../helpers/kubernetes.ts'

const BASE = join(ROOT, 'deploy/k8s/base')
const OVERLAY = join(ROOT, 'deploy/k8s/overlays/example')
const builds = { base: kustomizeBuild(BASE), 'example overlay': kustomizeBuild(OVERLAY) }
const pkg = await import('../../package.json', { with: { type: 'json' } }).then((m) => m.default as { version: string })

function one<T> (objects: K8sObject[], kind: string): T {
  const found = ofKind<T>(objects, kind)
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`)
  return found[0]!
}
/** The typed pieces a test reads from one build. */
function parts (objects: K8sObject[]) {
  const deployment = one<IDeployment>(objects, 'Deployment')
  const pod = deployment.spec!.template
  const container: IContainer = pod.spec!.containers.find((c) => c.name === 'keel')!
  const config = one<IConfigMap>(objects, 'ConfigMap').data ?? {}
  return { deployment, pod, container, config }
}

t.test('the base and the example overlay validate against the Kubernetes schemas', async (t) => {
  for (const [build, objects] of Object.entries(builds)) {
    t.same(validateManifests(objects), [], `${build}: no problem`)
    t.ok(['Deployment', 'Service', 'ConfigMap', 'PodDisruptionBudget', 'HorizontalPodAutoscaler'].every((k) => objects.some((o) => o.kind === k)),
      `${build}: Deployment, Service, ConfigMap, PodDisruptionBudget, HorizontalPodAutoscaler`)
  }
  t.ok(builds['example overlay'].some((o) => o.kind === 'Secret'), 'the overlay brings the Secret')
})

t.test('a corrupted field fails validation', async (t) => {
  // Each corruption writes into the Deployment as YAML could: any value, whatever the field's type.
  const corruptions: Array<[string, (d: Record<string, any>, c: Record<string, any>) => void, RegExp]> = [
    ['a probe port that is a string but names no container port', (_d, c) => { c.readinessProbe.httpGet.port = 'not-a-port' }, /readinessProbe: port "not-a-port" names no port/],
    ['a probe port that is not a port name at all', (_d, c) => { c.livenessProbe.httpGet.port = 'HTTPS PORT' }, /neither a number nor a valid port name/],
    ['a replica count written as text', (d) => { d.spec.replicas = 'two' }, /replicas must be integer/],
    ['a container port written as text', (_d, c) => { c.ports[0].containerPort = '3000' }, /containerPort must be integer/],
    ['dropped capabilities as a string, not a list', (_d, c) => { c.securityContext.capabilities.drop = 'ALL' }, /drop must be array/]
  ]
  for (const [what, corrupt, expected] of corruptions) {
    const objects = structuredClone(builds['example overlay'])
    const { deployment, container } = parts(objects)
    corrupt(deployment as Record<string, any>, container as Record<string, any>)
    const problems = validateManifests(objects)
    t.match(problems.join('\n'), expected, `${what}: ${problems[0] ?? 'not caught'}`)
  }
})

t.test('the Deployment keeps two pods or more, drains before closing, and outlives SHUTDOWN_TIMEOUT_MS', async (t) => {
  for (const [build, objects] of Object.entries(builds)) {
    const { deployment, pod, config } = parts(objects)
    const replicas = deployment.spec!.replicas ?? 1
    t.ok(replicas >= 2, `${build}: ${replicas} replicas`)
    t.ok((one<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler').spec!.minReplicas ?? 1) >= 2, `${build}: the autoscaler never goes below 2`)
    const drain = Number(config.SHUTDOWN_DRAIN_MS)
    t.ok(drain >= 3000, `${build}: SHUTDOWN_DRAIN_MS ${drain} lets endpoints and proxies drop the pod before the listener closes`)
    const grace = pod.spec!.terminationGracePeriodSeconds ?? 30
    t.ok(grace * 1000 > Number(config.SHUTDOWN_TIMEOUT_MS), `${build}: terminationGracePeriodSeconds ${grace} s above SHUTDOWN_TIMEOUT_MS ${config.SHUTDOWN_TIMEOUT_MS}`)
    t.ok(Number(config.SHUTDOWN_TIMEOUT_MS) > drain, `${build}: the drain fits inside SHUTDOWN_TIMEOUT_MS`)
  }
})

t.test('probes: readiness asks /health/ready, liveness and startup /health/live, on the container\'s own port and scheme', async (t) => {
  for (const [build, objects] of Object.entries(builds)) {
    const { container: c, config } = parts(objects)
    const scheme = config.TLS === 'off' ? 'HTTP' : 'HTTPS'
    const port = c.ports?.find((p) => p.containerPort === Number(config.PORT))
    t.ok(port, `${build}: the container port is PORT (${config.PORT})`)
    t.match(c.readinessProbe?.httpGet, { path: '/health/ready', port: port?.name, scheme }, `${build}: readiness`)
    t.match(c.livenessProbe?.httpGet, { path: '/health/live', port: port?.name, scheme }, `${build}: liveness`)
    t.match(c.startupProbe?.httpGet, { path: '/health/live', port: port?.name, scheme }, `${build}: startup`)
    const timeout = c.livenessProbe?.timeoutSeconds ?? 1
    t.ok(timeout * 1000 > Number(config.SHED_MAX_EVENT_LOOP_DELAY_MS), `${build}: liveness waits ${timeout} s, longer than the event-loop delay at which Keel sheds load`)
  }
})

t.test('metrics: Prometheus scrapes the pod\'s own metrics listener over plain HTTP; the Service never exposes it', async (t) => {
  for (const [build, objects] of Object.entries(builds)) {
    const { pod, container: c, config } = parts(objects)
    const metricsPort = Number(config.METRICS_PORT ?? loadConfig({}, tempDir()).metrics.port)
    const port = c.ports?.find((p) => p.name === 'metrics')
    t.equal(port?.containerPort, metricsPort, `${build}: a container port named metrics is METRICS_PORT (${metricsPort})`)
    t.not(metricsPort, Number(config.PORT), `${build}: not the API port`)
    t.match(config.METRICS_HOST, /^(0\.0\.0\.0|::)$/, `${build}: METRICS_HOST reaches the pod's address, where Prometheus scrapes`)
    t.match(pod.metadata?.annotations, {
      'prometheus.io/scrape': 'true', 'prometheus.io/scheme': 'http', 'prometheus.io/port': String(metricsPort), 'prometheus.io/path': '/metrics'
    }, `${build}: the scrape annotations name the metrics listener`)
    const service = one<IService>(objects, 'Service').spec?.ports ?? []
    t.ok(service.length > 0, `${build}: the Service has ports`)
    t.same(service.filter((p) => p.targetPort === 'metrics' || p.targetPort === metricsPort || p.port === metricsPort), [],
      `${build}: no Service port reaches the metrics listener`)
    t.ok(service.every((p) => c.ports?.some((cp) => cp.name === p.targetPort && cp.name !== 'metrics')), `${build}: every Service port targets a named API port`)
  }
})

t.test('the pod runs non-root, without privilege escalation, on a read-only root file system with every capability dropped', async (t) => {
  for (const [build, objects] of Object.entries(builds)) {
    const { pod, container: c } = parts(objects)
    t.match(pod.spec!.securityContext, { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } }, `${build}: pod`)
    t.not(pod.spec!.securityContext?.runAsUser, 0, `${build}: not uid 0`)
    t.match(c.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } }, `${build}: container`)
    t.not(c.securityContext?.privileged, true, `${build}: not privileged`)
    t.equal(pod.spec!.automountServiceAccountToken, false, `${build}: no API token in the pod (Keel never calls the API)`)
    t.ok(c.volumeMounts?.some((m) => m.mountPath === '/app/data'), `${build}: the image's one writable path is a volume`)
  }
})

t.test('resources: memory requested and limited above the load-shedding thresholds, CPU requested for the autoscaler', async (t) => {
  for (const [build, objects] of Object.entries(builds)) {
    const { container, config } = parts(objects)
    const { requests = {}, limits = {} } = container.resources ?? {}
    const memory = quantity(limits.memory ?? 0)
    t.ok(quantity(requests.cpu ?? 0) > 0 && quantity(requests.memory ?? 0) > 0, `${build}: requests set`)
    t.ok(memory > 0 && quantity(limits.cpu ?? 0) >= quantity(requests.cpu ?? 0), `${build}: limits set`)
    const rss = Number(config.SHED_MAX_RSS_BYTES)
    const heap = Number(config.SHED_MAX_HEAP_USED_BYTES)
    const heapLimit = Number(/--max-old-space-size=(\d+)/.exec(config.NODE_OPTIONS ?? '')?.[1] ?? 0) * 2 ** 20
    t.ok(rss > 0 && rss <= memory * 0.85, `${build}: SHED_MAX_RSS_BYTES ${rss} sheds load before the ${limits.memory} limit kills the pod`)
    t.ok(heap > 0 && heap < heapLimit, `${build}: SHED_MAX_HEAP_USED_BYTES ${heap} below the V8 heap limit ${heapLimit}`)
    t.ok(heapLimit < memory, `${build}: the V8 heap limit fits in the memory limit`)
  }
})

t.test('the ConfigMap and Secret hold only Keel\'s variables, secrets stay out of the ConfigMap, and production accepts them', async (t) => {
  const known = new Set([...Object.keys(EnvSchema.properties), 'NODE_OPTIONS'])
  const meta = EnvSchema.properties as unknown as Record<string, { secret?: boolean }>
  const dir = tempDir()
  const pair = await createSelfSignedCertificate()
  writeFileSync(join(dir, 'tls.crt'), pair.cert)
  writeFileSync(join(dir, 'tls.key'), pair.key)
  for (const [build, objects] of Object.entries(builds)) {
    const { container, config } = parts(objects)
    const secret = ofKind<ISecret>(objects, 'Secret')[0]?.stringData ?? {}
    t.same([...Object.keys(config), ...Object.keys(secret)].filter((k) => !known.has(k)), [], `${build}: no unknown variable (a typo would be ignored)`)
    t.same(Object.keys(config).filter((k) => meta[k]?.secret === true || k === 'REDIS_URL'), [], `${build}: no secret in the ConfigMap`)
    t.equal(config.NODE_ENV, 'production', `${build}: NODE_ENV`)
    t.match(config.HOST, /^(0\.0\.0\.0|::)$/, `${build}: HOST reaches the pod's interfaces`)
    const inside = (file: string | undefined, dir: string): boolean => file?.startsWith(`${dir}/`) === true
    t.ok(container.volumeMounts?.some((m) => m.readOnly === true && inside(config.TLS_CERT_FILE, m.mountPath) && inside(config.TLS_KEY_FILE, m.mountPath)),
      `${build}: the TLS pair comes from a read-only mounted Secret`)
    // The pair's paths point into the pod; here they point at a generated pair so the loader can read it.
    const env = { ...config, ...secret, JWT_SECRET: TEST_JWT_SECRET, TLS_CERT_FILE: join(dir, 'tls.crt'), TLS_KEY_FILE: join(dir, 'tls.key') }
    t.doesNotThrow(() => loadConfig(env, dir), `${build}: loadConfig accepts it in production`)
  }
  const secret = one<ISecret>(builds['example overlay'], 'Secret').stringData ?? {}
  t.ok('JWT_SECRET' in secret && 'REDIS_URL' in secret, 'the Secret carries the JWT secret and the Redis URL')
  t.same(Object.values(secret).filter((v) => v !== ''), [], 'and no value is committed')
})

t.test('the Service, PodDisruptionBudget and autoscaler act on the Deployment\'s pods', async (t) => {
  for (const [build, objects] of Object.entries(builds)) {
    const { deployment, pod } = parts(objects)
    const labels = pod.metadata?.labels ?? {}
    t.match(labels, one<IService>(objects, 'Service').spec?.selector ?? { missing: true }, `${build}: Service`)
    t.match(labels, one<IPodDisruptionBudget>(objects, 'PodDisruptionBudget').spec?.selector?.matchLabels ?? { missing: true }, `${build}: PodDisruptionBudget`)
    t.match(one<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler').spec?.scaleTargetRef, { kind: 'Deployment', name: deployment.metadata?.name }, `${build}: autoscaler`)
  }
})

t.test('the example overlay sets the image, the namespace, the trusted proxies and ingress-friendly connection caps', async (t) => {
  const objects = builds['example overlay']
  const { deployment, container, config } = parts(objects)
  t.match(container.image, new RegExp(`^[^:]+/keel:${pkg.version.replaceAll('.', '\\.')}$`), 'image from a registry, tagged with the version')
  t.same(objects.filter((o) => o.kind !== 'Namespace' && o.metadata.namespace !== 'keel').map((o) => o.kind), [], 'every namespaced object in the namespace')
  t.equal(one<INamespace>(objects, 'Namespace').metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'restricted', 'the restricted Pod Security Standard is enforced')
  t.not(config.TRUST_PROXY, 'off', 'TRUST_PROXY names the ingress')
  t.ok(config.MAX_CONNECTIONS_PER_IP === '0' || Number(config.MAX_CONNECTIONS_PER_IP) >= 10_000, 'behind an ingress the per-address cap is off or far above one client')
  t.equal(deployment.spec?.replicas, 3, 'the overlay\'s patch applied over the base')
})
