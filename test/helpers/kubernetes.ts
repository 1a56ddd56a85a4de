// Offline validation of Kubernetes objects: each against its Kubernetes JSON schema (kubernetes-models,
// generated from the API's OpenAPI document), then the cross-object rules the API server or the kubelet
// apply and a schema cannot state (a named port must exist, selectors must select the pods). Returns
// every problem as a line naming the object and field; an empty list means valid.

import { Deployment, type IDeployment } from 'kubernetes-models/apps/v1'
import { ConfigMap, Namespace, Secret, Service, type IContainer, type IPodTemplateSpec, type IService } from 'kubernetes-models/v1'
import { PodDisruptionBudget, type IPodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { HorizontalPodAutoscaler, type IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import type { K8sObject } from './kustomize.ts'

interface ModelClass { apiVersion: string, kind: string, new (data: never): { validate: () => void } }
const MODELS: ModelClass[] = [Deployment, ConfigMap, Namespace, Secret, Service, PodDisruptionBudget, HorizontalPodAutoscaler] as unknown as ModelClass[]

/** The objects of `kind` typed as the schema describes them (call after `validateManifests` passed). */
export function ofKind<T> (objects: K8sObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as unknown as T[]
}

const name = (o: K8sObject): string => `${o.kind}/${o.metadata?.name ?? '?'}`

/** Schema problems, then cross-object problems. */
export function validateManifests (objects: K8sObject[]): string[] {
  const problems: string[] = []
  for (const o of objects) {
    const Model = MODELS.find((m) => m.apiVersion === o.apiVersion && m.kind === o.kind)
    if (Model === undefined) { problems.push(`${name(o)}: no schema for ${o.apiVersion} ${o.kind}`); continue }
    try {
      new Model(o as never).validate()
    } catch (err) {
      problems.push(`${name(o)}: ${(err as Error).message}`)
    }
  }
  if (problems.length > 0) return problems
  return clusterRules(objects)
}

// IANA_SVC_NAME, as the API server checks port names: 1–15 lowercase letters, digits and inner dashes.
const PORT_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/

function portProblem (where: string, port: number | string | undefined, names: Set<string>): string | undefined {
  if (typeof port === 'number') return port >= 1 && port <= 65535 ? undefined : `${where}: port ${port} is not 1–65535`
  if (port === undefined) return undefined
  if (!PORT_NAME.test(port) || port.includes('--')) return `${where}: port ${JSON.stringify(port)} is neither a number nor a valid port name`
  return names.has(port) ? undefined : `${where}: port ${JSON.stringify(port)} names no port of the container`
}

const selects = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v)

function clusterRules (objects: K8sObject[]): string[] {
  const problems: string[] = []
  const deployments = ofKind<IDeployment>(objects, 'Deployment')
  const labelsOf = (d: IDeployment): Record<string, string> | undefined => d.spec?.template.metadata?.labels
  const portNames = (pod: IPodTemplateSpec | undefined): Set<string> =>
    new Set((pod?.spec?.containers ?? []).flatMap((c) => (c.ports ?? []).map((p) => p.name ?? '')))
  for (const d of deployments) {
    const where = `Deployment/${d.metadata?.name ?? '?'}`
    if (!selects(d.spec?.selector.matchLabels, labelsOf(d))) problems.push(`${where}: spec.selector does not select its own pod template`)
    for (const c of d.spec?.template.spec?.containers ?? []) problems.push(...probeProblems(`${where} container ${c.name}`, c))
  }
  for (const s of ofKind<IService>(objects, 'Service')) {
    const where = `Service/${s.metadata?.name ?? '?'}`
    const target = deployments.find((d) => selects(s.spec?.selector, labelsOf(d)))
    if (target === undefined) { problems.push(`${where}: selects no Deployment's pods`); continue }
    for (const p of s.spec?.ports ?? []) {
      const problem = portProblem(`${where} targetPort`, p.targetPort, portNames(target.spec?.template))
      if (problem !== undefined) problems.push(problem)
    }
  }
  for (const pdb of ofKind<IPodDisruptionBudget>(objects, 'PodDisruptionBudget')) {
    if (!deployments.some((d) => selects(pdb.spec?.selector?.matchLabels, labelsOf(d)))) problems.push(`PodDisruptionBudget/${pdb.metadata?.name ?? '?'}: selects no Deployment's pods`)
  }
  for (const hpa of ofKind<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler')) {
    const ref = hpa.spec?.scaleTargetRef
    if (!objects.some((o) => o.kind === ref?.kind && o.metadata.name === ref?.name)) {
      problems.push(`HorizontalPodAutoscaler/${hpa.metadata?.name ?? '?'}: scaleTargetRef ${ref?.kind ?? '?'}/${ref?.name ?? '?'} does not exist`)
    }
  }
  return problems
}

// The kubelet probes a named port by looking it up among the container's ports: a name it cannot find
// is a probe that never succeeds.
function probeProblems (where: string, c: IContainer): string[] {
  const names = new Set((c.ports ?? []).map((p) => p.name ?? ''))
  const problems: string[] = []
  for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) {
    const probe = c[kind]
    const problem = portProblem(`${where} ${kind}`, probe?.httpGet?.port ?? probe?.tcpSocket?.port ?? probe?.grpc?.port, names)
    if (problem !== undefined) problems.push(problem)
  }
  return problems
}

/** A Kubernetes quantity ("512Mi", "1", "500m") as a number (bytes, cores). */
export function quantity (value: string | number): number {
  if (typeof value === 'number') return value
  const m = /^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(value)
  if (m === null) throw new Error(`not a quantity: ${value}`)
  const factor: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 }
  return Number(m[1]) * (m[2] === undefined ? 1 : factor[m[2]]!)
}
