/**
 * Offline validation of Kubernetes objects against the OpenAPI schemas `kubernetes-models` ships.
 * A kind this map does not know fails the test: every object the project ships must be checked.
 */
import { Job } from "kubernetes-models/batch/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { Role, RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { ConfigMap, Namespace, Secret, ServiceAccount } from "kubernetes-models/v1";

type Model = new (data: never) => { validate(): void };

const MODELS: Record<string, Model> = {
  "v1/Namespace": Namespace as unknown as Model,
  "v1/ConfigMap": ConfigMap as unknown as Model,
  "v1/Secret": Secret as unknown as Model,
  "v1/ServiceAccount": ServiceAccount as unknown as Model,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy as unknown as Model,
  "rbac.authorization.k8s.io/v1/Role": Role as unknown as Model,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding as unknown as Model,
  "batch/v1/Job": Job as unknown as Model,
};

/** Throws with the object's kind/name and the schema's complaint when it does not validate. */
export function validateObject(o: {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: { name?: unknown };
}): void {
  const key = `${String(o.apiVersion)}/${String(o.kind)}`;
  const M = MODELS[key];
  if (!M) throw new Error(`no schema model for ${key} (${String(o.metadata?.name)})`);
  try {
    new M(structuredClone(o) as never).validate();
  } catch (err) {
    throw new Error(`${key} ${String(o.metadata?.name)}: ${(err as Error).message}`);
  }
}
