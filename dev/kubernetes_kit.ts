/**
 * Reads the Kubernetes kit in deploy/kubernetes/ and checks what must agree
 * between its objects and ws-time: the grace period against the drain, the
 * memory figure against the limit, the probes and ports against the
 * listeners, the selectors against the pods' labels. The tests run these
 * checks on the shipped files and on broken copies.
 *
 * @module
 */

import { parseAllDocuments } from "yaml";
import { OPTIONS } from "../server/config/schema.ts";
import { drainBudgetMs } from "./drain_budget.ts";
import { ROOT } from "./paths.ts";

/** The kit's folder. */
export const KUBERNETES_KIT = `${ROOT}deploy/kubernetes`;

/** A parsed Kubernetes object: plain data of any kind's shape. */
// deno-lint-ignore no-explicit-any
export type Manifest = any;

/** A Kubernetes object as parsed from YAML, with the file it came from. */
export interface KitObject {
  readonly file: string;
  readonly object: Manifest;
}

/** Files of the kit that are not Kubernetes objects. */
const NOT_OBJECTS = new Set([
  "kustomization.yaml",
  "prometheus-adapter-values.yaml",
]);

/** Every Kubernetes object in the kit's `.yaml` files, in file order. */
export function kitObjects(root: string = KUBERNETES_KIT): KitObject[] {
  const out: KitObject[] = [];
  const walk = (dir: string) => {
    const entries = [...Deno.readDirSync(`${root}/${dir}`)]
      .sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else if (entry.name.endsWith(".yaml") && !NOT_OBJECTS.has(entry.name)) {
        for (
          const doc of parseAllDocuments(
            Deno.readTextFileSync(`${root}/${path}`),
          )
        ) {
          if (doc.errors.length > 0) {
            throw new Error(`${path}: ${doc.errors[0]!.message}`);
          }
          out.push({ file: path, object: doc.toJS() });
        }
      }
    }
  };
  walk("");
  return out;
}

/** The one object of a kind (and file, when several) in a list. */
export function kitObject(
  objects: KitObject[],
  kind: string,
  file?: string,
): Manifest {
  const found = objects.filter((o) =>
    o.object.kind === kind && (file === undefined || o.file === file)
  );
  if (found.length !== 1) {
    throw new Error(`${found.length} ${kind} objects in ${file ?? "the kit"}`);
  }
  return found[0]!.object;
}

/**
 * The environment ws-time sees in the Deployment's container: its
 * ConfigMap's entries, then the literal `env` values over them (values
 * from secrets or fields read as present but unknown).
 */
export function containerEnvironment(
  deployment: Manifest,
  configMap: Manifest,
): Record<string, string | undefined> {
  const container = deployment.spec.template.spec.containers[0];
  const env: Record<string, string | undefined> = { ...configMap.data };
  for (const entry of container.env ?? []) env[entry.name] = entry.value;
  return env;
}

/** Bytes of a Kubernetes memory quantity ("768Mi", "1Gi", "512M"). */
export function memoryBytes(quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|K|M|G)?$/.exec(quantity);
  if (!match) throw new Error(`unsupported quantity ${quantity}`);
  const unit = {
    "": 1,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    K: 1e3,
    M: 1e6,
    G: 1e9,
  }[match[2] ?? ""]!;
  return Number(match[1]) * unit;
}

const labelsMatch = (
  selector: Record<string, string>,
  labels: Record<string, string>,
) =>
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/**
 * What disagrees between the kit's objects and ws-time, one line each;
 * empty when they fit. `imageUser` is the image's `uid:gid`.
 */
export function kitProblems(
  objects: KitObject[],
  imageUser: string,
): string[] {
  const problems: string[] = [];
  const check = (ok: boolean, problem: string) => {
    if (!ok) problems.push(problem);
  };
  const deployment = kitObject(objects, "Deployment");
  const configMap = kitObject(objects, "ConfigMap", "base/configmap.yaml");
  const pod = deployment.spec.template;
  const container = pod.spec.containers[0];
  const env = containerEnvironment(deployment, configMap);
  const known = new Set(OPTIONS.map((o) => o.env));
  for (const name of Object.keys(env)) {
    check(known.has(name), `${name} is no ws-time setting`);
  }

  const drain = drainBudgetMs(env);
  const grace = pod.spec.terminationGracePeriodSeconds * 1000;
  check(
    grace > drain,
    `terminationGracePeriodSeconds ${grace / 1000} s does not outlast the ` +
      `drain of ${drain / 1000} s`,
  );
  const limit = memoryBytes(container.resources.limits.memory) / 1048576;
  check(
    env.MEMORY_LIMIT_MB === String(Math.floor(limit * 0.8)),
    `MEMORY_LIMIT_MB ${env.MEMORY_LIMIT_MB} is not 80% of the ${limit} MiB limit`,
  );

  const port = (name: string) =>
    container.ports.find((p: { name: string }) => p.name === name)
      ?.containerPort;
  check(
    String(port("http")) === env.PORT,
    `port http ${port("http")} is not PORT ${env.PORT}`,
  );
  check(
    String(port("metrics")) === env.METRICS_PORT &&
      pod.metadata.annotations["prometheus.io/port"] === env.METRICS_PORT,
    `metrics port, METRICS_PORT and the scrape annotation disagree`,
  );
  check(
    env.METRICS_HOST === "0.0.0.0",
    "the operator port must listen on the pod's address for Prometheus",
  );
  const probe = (name: string) => container[name]?.httpGet ?? {};
  check(
    probe("readinessProbe").path === "/healthcheck" &&
      probe("readinessProbe").port === "http",
    "readiness must ask /healthcheck on the public port",
  );
  check(
    probe("livenessProbe").path === "/healthz" &&
      probe("livenessProbe").port === "http",
    "liveness must ask /healthz on the public port",
  );

  const security = pod.spec.securityContext ?? {};
  check(
    `${security.runAsUser}:${security.runAsGroup}` === imageUser &&
      security.runAsNonRoot === true,
    `the pod must run as the image's user ${imageUser}`,
  );
  check(
    container.securityContext?.readOnlyRootFilesystem === true &&
      container.securityContext?.allowPrivilegeEscalation === false,
    "the root file system must be read-only, without privilege escalation",
  );
  const secretFile = env.SESSION_SECRET_FILE ?? "";
  const mount = (container.volumeMounts ?? []).find((
    m: { mountPath: string },
  ) => secretFile.startsWith(`${m.mountPath}/`));
  check(
    mount !== undefined && mount.mountPath.startsWith("/etc/ws-time/"),
    `SESSION_SECRET_FILE ${secretFile} is not in a mount under /etc/ws-time`,
  );
  check(
    env.SESSION_SECRET === undefined,
    "the session secret must come as a file, not in the environment",
  );

  const labels = pod.metadata.labels;
  const service = objects.find((o) => o.object.kind === "Service")?.object;
  const servicePorts = (service?.spec.ports ?? []) as Array<
    { name: string; port: number }
  >;
  for (const { file, object } of objects) {
    const selector = object.kind === "Service"
      ? object.spec.selector
      : object.kind === "PodDisruptionBudget" ||
          object.kind === "PodMonitor"
      ? object.spec.selector.matchLabels
      : object.kind === "NetworkPolicy"
      ? object.spec.podSelector.matchLabels
      : object.kind === "Deployment"
      ? object.spec.selector.matchLabels
      : undefined;
    if (selector !== undefined) {
      check(labelsMatch(selector, labels), `${file}: selects no ws-time pod`);
    }
    if (object.kind === "Ingress") {
      const attributes = String(
        object.metadata.annotations?.[
          "alb.ingress.kubernetes.io/target-group-attributes"
        ] ?? "",
      );
      const delay = /deregistration_delay\.timeout_seconds=(\d+)/.exec(
        attributes,
      );
      if (object.spec.ingressClassName === "alb") {
        check(
          delay !== null && Number(delay[1]) * 1000 > drain,
          `${file}: the ALB's deregistration delay must outlast the drain of ${
            drain / 1000
          } s`,
        );
      }
    }
    if (object.kind === "Ingress") {
      for (const rule of object.spec.rules) {
        for (const path of rule.http.paths) {
          const backend = path.backend.service;
          check(
            backend.name === service?.metadata.name &&
              servicePorts.some((p) => p.name === backend.port.name),
            `${file}: routes to no port of the Service`,
          );
        }
      }
    }
    if (object.kind === "HTTPRoute") {
      for (const rule of object.spec.rules) {
        for (const ref of rule.backendRefs) {
          check(
            ref.name === service?.metadata.name &&
              servicePorts.some((p) => p.port === ref.port),
            `${file}: routes to no port of the Service`,
          );
        }
      }
    }
    if (object.kind === "PodMonitor") {
      for (const endpoint of object.spec.podMetricsEndpoints) {
        check(
          String(port(endpoint.port)) === env.METRICS_PORT,
          `${file}: scrapes a port other than the operator port`,
        );
      }
    }
    if (object.kind === "HorizontalPodAutoscaler") {
      const target = object.spec.scaleTargetRef;
      check(
        target.kind === "Deployment" &&
          target.name === deployment.metadata.name,
        `${file}: scales something other than the Deployment`,
      );
    }
  }
  return problems;
}
