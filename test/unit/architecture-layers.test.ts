import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../../src", import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith(".ts") ? [path] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:from|import\()\s*"([^"]+)"/g)].map((m) => m[1]!);
}

describe("layers stay honest", () => {
  it("commands know nothing of HTTP or stores: src/cli imports no undici, src/store or registry client", () => {
    const offenders = files(join(SRC, "cli")).flatMap((f) =>
      imports(f)
        .filter((i) => i === "undici" || /\/store\/|\/oci\/registry\//.test(i))
        .map((i) => `${f.slice(SRC.length + 1)} imports ${i}`),
    );
    expect(offenders).toEqual([]);
  });

  it("the registry client knows nothing of bundles: src/oci imports nothing from bundle, pipeline or cli", () => {
    const offenders = files(join(SRC, "oci")).flatMap((f) =>
      imports(f)
        .filter((i) => /\/(bundle|pipeline|cli|profiles)\//.test(i))
        .map((i) => `${f.slice(SRC.length + 1)} imports ${i}`),
    );
    expect(offenders).toEqual([]);
  });

  it("the registry client knows nothing of stores: src/oci imports nothing from src/store", () => {
    const offenders = files(join(SRC, "oci")).flatMap((f) =>
      imports(f)
        .filter((i) => /\/store\//.test(i))
        .map((i) => `${f.slice(SRC.length + 1)} imports ${i}`),
    );
    expect(offenders).toEqual([]);
  });

  it("the network layer stands alone: src/net imports only errors.ts of the project", () => {
    const offenders = files(join(SRC, "net")).flatMap((f) =>
      imports(f)
        .filter((i) => i.startsWith(".") && !/^\.\/[\w-]+\.js$/.test(i) && i !== "../errors.js")
        .map((i) => `${f.slice(SRC.length + 1)} imports ${i}`),
    );
    expect(offenders).toEqual([]);
  });

  it("TLS trust is built in one place: only src/net reads the root CA list", () => {
    const offenders = files(SRC)
      .filter((f) => !f.startsWith(join(SRC, "net")))
      .filter((f) => /\brootCertificates\b|createSecureContext/.test(readFileSync(f, "utf8")))
      .map((f) => f.slice(SRC.length + 1));
    expect(offenders).toEqual([]);
  });
});
