/**
 * Chart fixtures: the kube-secure-scanner layout (helm-charts/ with five charts chained by file://
 * dependencies) as a map of path → content, to write on disk or commit into a test git repository.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

function chartYaml(
  name: string,
  version: string,
  deps: { name: string; version: string; repository: string }[] = [],
) {
  let y = `apiVersion: v2\nname: ${name}\ndescription: ${name} for <tests> & checks\ntype: application\nversion: ${version}\nappVersion: "1.0.0"\nmaintainers:\n  - name: Security Team\n    email: sec@example.org\n`;
  if (deps.length) {
    y += "dependencies:\n";
    for (const d of deps)
      y += `  - name: ${d.name}\n    version: ${d.version}\n    repository: "${d.repository}"\n`;
  }
  return y;
}

/** The five charts of kube-secure-scanner's helm-charts/ folder, trimmed to what packaging needs. */
export function scannerChartFiles(prefix = "helm-charts"): Record<string, string> {
  const p = (f: string) => `${prefix}/${f}`;
  const common = { name: "common-scanner", version: "0.1.0", repository: "file://../common-scanner" };
  return {
    [p("scanner-infrastructure/Chart.yaml")]: chartYaml("scanner-infrastructure", "0.1.0"),
    [p("scanner-infrastructure/values.yaml")]:
      "targetNamespace: inspec-test\nserviceAccount:\n  create: true\n",
    [p("scanner-infrastructure/templates/namespace.yaml")]:
      "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ .Values.targetNamespace }}\n",
    [p("common-scanner/Chart.yaml")]: chartYaml("common-scanner", "0.1.0", [
      { name: "scanner-infrastructure", version: "0.1.0", repository: "file://../scanner-infrastructure" },
    ]),
    [p("common-scanner/values.yaml")]:
      "scanner-infrastructure:\n  targetNamespace: inspec-test\nscripts:\n  generate: true\n",
    [p("common-scanner/templates/configmap-scripts.yaml")]: "apiVersion: v1\nkind: ConfigMap\n",
    [p("standard-scanner/Chart.yaml")]: chartYaml("standard-scanner", "0.1.0", [common]),
    [p("standard-scanner/values.yaml")]:
      "common-scanner:\n  scripts:\n    generate: true\ntestPod:\n  deploy: true\n  image: busybox:latest\n",
    [p("standard-scanner/templates/test-pod.yaml")]: "apiVersion: v1\nkind: Pod\n",
    [p("standard-scanner/templates/NOTES.txt")]: "Standard scanner installed.\n",
    [p("standard-scanner/.helmignore")]: "# editor files\n*.swp\n.DS_Store\nexamples/\n",
    [p("standard-scanner/examples/values-ci.yaml")]: "testPod:\n  deploy: false\n",
    [p("standard-scanner/README.md")]: "# standard-scanner\n",
    [p("distroless-scanner/Chart.yaml")]: chartYaml("distroless-scanner", "0.1.0", [common]),
    [p("distroless-scanner/values.yaml")]:
      "testPod:\n  image: ghcr.io/distroless/static:nonroot\ndebugContainer:\n  image: docker.io/library/busybox:1.37\n",
    [p("sidecar-scanner/Chart.yaml")]: chartYaml("sidecar-scanner", "0.1.0", [common]),
    [p("sidecar-scanner/values.yaml")]:
      "testPod:\n  targetContainer:\n    image: busybox:latest\nsidecarScanner:\n  image: docker.io/cincproject/auditor:latest\n",
    README: "kube-secure-scanner test layout\n",
  };
}

export async function writeTree(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const full = path.join(root, rel);
    await mkdir(path.dirname(full), { recursive: true });
    await writeFile(full, content);
  }
}

/** A minimal Chart.yaml. */
export function minimalChart(
  name: string,
  version = "0.1.0",
  deps: { name: string; version?: string; repository: string; alias?: string }[] = [],
): string {
  let y = `apiVersion: v2\nname: ${name}\nversion: ${version}\n`;
  if (deps.length) {
    y += "dependencies:\n";
    for (const d of deps) {
      y += `  - name: ${d.name}\n    repository: "${d.repository}"\n`;
      if (d.version) y += `    version: "${d.version}"\n`;
      if (d.alias) y += `    alias: ${d.alias}\n`;
    }
  }
  return y;
}
