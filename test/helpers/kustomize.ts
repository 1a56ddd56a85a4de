// `kustomize build` for the subset Keel's manifests use, so tests can validate what `kubectl apply -k`
// would send: resources (files and folders with their own kustomization), namespace, images, and
// strategic-merge patches by path. A kustomization field outside that subset is an error, so an
// overlay cannot use a feature this build would silently ignore.
// YAML is read as Kubernetes reads it (YAML 1.1: `on` is a boolean, 0440 is octal).

import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'

export interface K8sObject {
  apiVersion: string
  kind: string
  metadata: { name: string, namespace?: string, labels?: Record<string, string>, [key: string]: unknown }
  [key: string]: unknown
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type JsonObject = { [key: string]: Json }

interface Kustomization {
  resources?: string[]
  namespace?: string
  images?: Array<{ name: string, newName?: string, newTag?: string }>
  patches?: Array<{ path: string }>
}

const SUPPORTED = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'images', 'patches'])
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PriorityClass', 'StorageClass'])

/** Every document of a YAML file, as Kubernetes' YAML 1.1 reading gives them. */
export function readYaml (file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8'), { version: '1.1' }).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`)
    return doc.toJS() as unknown
  }).filter((d) => d !== null)
}

/** The objects `kustomize build dir` would print. */
export function kustomizeBuild (dir: string): K8sObject[] {
  const file = join(dir, 'kustomization.yaml')
  const k = readYaml(file)[0] as Kustomization & Record<string, unknown>
  const unsupported = Object.keys(k).filter((key) => !SUPPORTED.has(key))
  if (unsupported.length > 0) throw new Error(`${file}: ${unsupported.join(', ')} not supported by this build`)

  const objects: K8sObject[] = []
  for (const resource of k.resources ?? []) {
    const path = join(dir, resource)
    objects.push(...(statSync(path).isDirectory() ? kustomizeBuild(path) : readYaml(path) as K8sObject[]))
  }
  for (const { path } of k.patches ?? []) {
    for (const patch of readYaml(join(dir, path)) as K8sObject[]) {
      const target = objects.find((o) => o.kind === patch.kind && o.metadata.name === patch.metadata.name)
      if (target === undefined) throw new Error(`${join(dir, path)}: no ${patch.kind} named ${patch.metadata.name} to patch`)
      objects[objects.indexOf(target)] = strategicMerge(target as unknown as JsonObject, patch as unknown as JsonObject) as unknown as K8sObject
    }
  }
  for (const o of objects) {
    if (k.namespace !== undefined && !CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace
    for (const image of k.images ?? []) setImage(o, image)
  }
  return objects
}

function setImage (o: K8sObject, image: NonNullable<Kustomization['images']>[number]): void {
  const pod = (o.spec as { template?: { spec?: { containers?: Array<{ image?: string }>, initContainers?: Array<{ image?: string }> } } } | undefined)?.template?.spec
  for (const c of [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])]) {
    const [name, tag] = (c.image ?? '').split(/:(?=[^/]*$)/)
    if (name !== image.name) continue
    c.image = `${image.newName ?? name}${image.newTag !== undefined ? `:${image.newTag}` : tag !== undefined ? `:${tag}` : ''}`
  }
}

// The merge keys Kubernetes declares for the lists these manifests patch; any other list is replaced.
const MERGE_KEYS: Record<string, string[]> = {
  containers: ['name'],
  initContainers: ['name'],
  env: ['name'],
  volumes: ['name'],
  volumeMounts: ['mountPath'],
  ports: ['containerPort', 'port'],
  imagePullSecrets: ['name']
}

function isObject (v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** A strategic merge patch without directives: maps merge, keyed lists merge by key, null deletes. */
export function strategicMerge (target: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = structuredClone(target)
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) throw new Error(`patch directive ${key} not supported by this build`)
    const current = out[key]
    if (value === null) delete out[key]
    else if (isObject(value) && isObject(current)) out[key] = strategicMerge(current, value)
    else if (Array.isArray(value) && Array.isArray(current)) out[key] = mergeList(key, current, value)
    else out[key] = structuredClone(value)
  }
  return out
}

function mergeList (field: string, current: Json[], patch: Json[]): Json[] {
  const mergeKey = MERGE_KEYS[field]?.find((k) => patch.every((item) => isObject(item) && item[k] !== undefined))
  if (mergeKey === undefined) return structuredClone(patch)
  const out = structuredClone(current)
  for (const item of patch as JsonObject[]) {
    const index = out.findIndex((c) => isObject(c) && c[mergeKey] === item[mergeKey])
    if (index === -1) out.push(structuredClone(item))
    else out[index] = strategicMerge(out[index] as JsonObject, item)
  }
  return out
}
