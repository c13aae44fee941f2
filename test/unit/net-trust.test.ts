import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { findHostConfig, loadHostTrust, Trust, trustStats } from "../../src/net/trust.js";

const tmp = mkdtempSync(join(tmpdir(), "airgap-trust-unit-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function selfSigned(name: string): { cert: string; key: string } {
  const cert = join(tmp, `${name}.crt`);
  const key = join(tmp, `${name}.key`);
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"].concat([
      "-subj",
      `/CN=${name}`,
      "-keyout",
      key,
      "-out",
      cert,
    ]),
    { stdio: "ignore" },
  );
  return { cert, key };
}

describe("trust settings per host", () => {
  it("finds host config by host:port, with scheme prefixes and the Docker Hub aliases", () => {
    const hosts = [{ host: "https://reg.example:5000" }, { host: "index.docker.io", insecure: true }];
    expect(findHostConfig("reg.example:5000", hosts)).toBe(hosts[0]);
    expect(findHostConfig("reg.example", hosts)).toBeUndefined();
    expect(findHostConfig("registry-1.docker.io", hosts)).toBe(hosts[1]);
  });

  it("verifies by default; insecure and plainHTTP only for hosts named so", () => {
    const trust = new Trust({ certsDirs: [], hosts: [{ host: "a:1", insecure: true, plainHTTP: true }] });
    expect(trust.connectOptions("localhost:5000").rejectUnauthorized).toBe(true);
    expect(trust.host("localhost:5000").plainHTTP).toBe(false);
    expect(trust.connectOptions("a:1").rejectUnauthorized).toBe(false);
    expect(trust.host("a:1").plainHTTP).toBe(true);
    expect(trust.connectOptions("b:1").rejectUnauthorized).toBe(true);
  });

  it("names a missing CA file and a lone client certificate as config errors", () => {
    expect(() =>
      loadHostTrust("a:1", { certsDirs: [], hosts: [{ host: "a:1", ca: "/no/such/ca.crt" }] }),
    ).toThrow(/\/no\/such\/ca\.crt/);
    expect(() => loadHostTrust("a:1", { certsDirs: [], hosts: [{ host: "a:1", cert: "/x.crt" }] })).toThrow(
      /both cert and key/,
    );
  });

  it("reads CA files, the host's ca, and certs.d (CAs and client.cert/client.key), in that order", () => {
    const a = selfSigned("a");
    const b = selfSigned("b");
    const c = selfSigned("c");
    const dir = join(tmp, "certs.d", "reg.example:5000");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "ca.crt"), readFileSync(c.cert));
    writeFileSync(join(dir, "client.cert"), readFileSync(c.cert));
    writeFileSync(join(dir, "client.key"), readFileSync(c.key));
    const t = loadHostTrust("reg.example:5000", {
      caFiles: [a.cert],
      hosts: [{ host: "reg.example:5000", ca: b.cert }],
      certsDirs: [join(tmp, "certs.d")],
    });
    expect(t.files.cas).toEqual([a.cert, b.cert, join(dir, "ca.crt")]);
    expect(t.files.cert).toBe(join(dir, "client.cert"));
    expect(t.sources[0]).toBe(`CA file ${a.cert}`);
  });

  it("builds one SecureContext per distinct trust setting and reuses it", () => {
    const a = selfSigned("ctx");
    const trust = new Trust({ caFiles: [a.cert], certsDirs: [] });
    const before = trustStats.secureContexts;
    const first = trust.secureContext("x.example");
    for (let i = 0; i < 50; i++) expect(trust.secureContext("x.example")).toBe(first);
    // another host with the same trust shares it
    expect(trust.secureContext("y.example:443")).toBe(first);
    expect(trustStats.secureContexts - before).toBe(1);
  });

  it("gives git one CA bundle file: the machine's roots plus the extra CA", async () => {
    const a = selfSigned("git");
    const trust = new Trust({ caFiles: [a.cert], certsDirs: [] });
    const env = await trust.gitEnv();
    const bundle = readFileSync(env.GIT_SSL_CAINFO!, "utf8");
    expect(bundle).toContain(readFileSync(a.cert, "utf8").trim());
    expect(bundle.match(/BEGIN CERTIFICATE/g)!.length).toBeGreaterThan(50);
    expect(await trust.gitEnv()).toEqual(env);
    expect(await new Trust({ certsDirs: [] }).gitEnv()).toEqual({});
    expect((await new Trust({ insecure: true }).gitEnv()).GIT_SSL_NO_VERIFY).toBe("true");
  });
});
