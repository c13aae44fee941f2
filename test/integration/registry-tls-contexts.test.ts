/**
 * TLS setup cost: against the real TLS registry (private CA, Basic auth), many concurrent blob
 * fetches over many connections build ONE SecureContext (the whole root CA list parsed once), not
 * one per connection as Node does when each connection is given `ca` options.
 */

import { execFileSync } from "node:child_process";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { trustStats } from "../../src/net/trust.js";
import { sha256Digest } from "../../src/oci/digest.js";
import { RegistryClient } from "../../src/oci/registry/client.js";
import { registryRepository } from "../../src/store/registry.js";
import { closeFixtures, type PushedImage, pushImage, tlsTarget, uniqueRepo } from "../helpers/fixtures.js";

const target = tlsTarget();
const repo = uniqueRepo("tlsctx");
let image: PushedImage;
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "airgap-tlsctx-"));
  image = await pushImage(target, repo, "v1", {
    layerSizes: Array.from({ length: 40 }, (_, i) => 3000 + i),
  });
  writeFileSync(
    join(tmp, "config.json"),
    JSON.stringify({
      auths: { [target.host]: { username: target.auth!.user, password: target.auth!.password } },
    }),
  );
});

afterAll(async () => {
  await closeFixtures();
  rmSync(tmp, { recursive: true, force: true });
});

describe("one SecureContext per host", () => {
  it("40 concurrent blob fetches over several TLS connections build one context and none per connection", async () => {
    // Contexts Node builds itself (tls.connect without `secureContext`) go through tls.createSecureContext.
    const original = tls.createSecureContext;
    let perConnection = 0;
    tls.createSecureContext = (...args: Parameters<typeof original>) => {
      perConnection++;
      return original(...args);
    };
    let connections = 0;
    const onConnected = () => {
      connections++;
    };
    subscribe("undici:client:connected", onConnected);
    const before = trustStats.secureContexts;
    const client = new RegistryClient({
      caFiles: [target.ca!],
      certsDirs: [],
      dockerConfigDir: tmp,
      retries: 0,
    });
    try {
      const store = registryRepository(client, target.host, repo);
      const digests = await Promise.all(
        image.layers.map(async (layer) => {
          const chunks: Buffer[] = [];
          for await (const c of await store.fetch(layer)) chunks.push(c as Buffer);
          return sha256Digest(Buffer.concat(chunks));
        }),
      );
      expect(digests).toEqual(image.layers.map((l) => l.digest));
      // A second round reuses the kept-alive connections.
      const afterFirst = connections;
      for (const layer of image.layers.slice(0, 10)) (await store.fetch(layer)).resume();
      expect(connections).toBe(afterFirst);
    } finally {
      tls.createSecureContext = original;
      unsubscribe("undici:client:connected", onConnected);
      await client.close();
    }
    expect(connections).toBeGreaterThan(1);
    expect(trustStats.secureContexts - before).toBe(1);
    expect(perConnection).toBe(0);
  });

  it("a host given its own CA still trusts the machine's store (roots and NODE_EXTRA_CA_CERTS)", () => {
    // Another CA for the host (any real one: a root of Node's list), and the registry's own CA only
    // in NODE_EXTRA_CA_CERTS: the connection must verify through the machine's store.
    const otherCa = join(tmp, "other-ca.crt");
    writeFileSync(otherCa, tls.rootCertificates[0]!);
    const trustModule = join(process.cwd(), "dist", "net", "trust.js");
    const [hostname, port] = target.host.split(":") as [string, string];
    const script = `
      import tls from "node:tls";
      const { Trust } = await import(${JSON.stringify(trustModule)});
      const trust = new Trust({ caFiles: [${JSON.stringify(otherCa)}], certsDirs: [] });
      const socket = tls.connect({ host: ${JSON.stringify(hostname)}, port: ${port}, servername: undefined,
        secureContext: trust.secureContext(${JSON.stringify(target.host)}), rejectUnauthorized: false });
      socket.on("secureConnect", () => { console.log(socket.authorized ? "trusted" : String(socket.authorizationError)); socket.destroy(); });
      socket.on("error", (e) => { console.log("error " + e.message); });
    `;
    const run = (extra: string) =>
      execFileSync(process.execPath, ["--input-type=module", "-e", script], {
        env: { ...process.env, NODE_EXTRA_CA_CERTS: extra, SSL_CERT_FILE: "", SSL_CERT_DIR: "" },
        encoding: "utf8",
      }).trim();
    expect(run(target.ca!)).toBe("trusted");
    expect(run("/dev/null")).not.toBe("trusted");
  });
});
