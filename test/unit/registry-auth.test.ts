import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { mergeScopes, parseWWWAuthenticate, pullScope, pushScope } from "../../src/oci/registry/auth.js";
import { credentialFiles, lookupCredential } from "../../src/oci/registry/credentials.js";
import { parseErrorBody } from "../../src/oci/registry/errors.js";
import {
  backoffDelay,
  DEFAULT_RETRY,
  isRetryableStatus,
  parseRetryAfter,
} from "../../src/oci/registry/retry.js";
import { nextLink } from "../../src/store/registry.js";

const tmp = mkdtempSync(join(tmpdir(), "airgap-registry-unit-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("WWW-Authenticate", () => {
  it("parses Docker Hub's Bearer challenge", () => {
    const [c] = parseWWWAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
    );
    expect(c).toEqual({
      scheme: "bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:library/busybox:pull",
      },
    });
  });

  it("parses Basic, unquoted values, escapes and several challenges", () => {
    expect(parseWWWAuthenticate('Basic realm="airgap-test"')).toEqual([
      { scheme: "basic", params: { realm: "airgap-test" } },
    ]);
    const cs = parseWWWAuthenticate(
      'Bearer realm="https://a/t",error="insufficient_scope", Basic realm=x, Negotiate',
    );
    expect(cs.map((c) => c.scheme)).toEqual(["bearer", "basic", "negotiate"]);
    expect(cs[0]!.params.error).toBe("insufficient_scope");
    expect(cs[1]!.params.realm).toBe("x");
    expect(parseWWWAuthenticate('Bearer realm="a\\"b"')[0]!.params.realm).toBe('a"b');
  });
});

describe("scopes", () => {
  it("merges actions per resource, so push covers pull, and keeps mount sources", () => {
    expect(pullScope("a/b")).toBe("repository:a/b:pull");
    expect(pushScope("a/b")).toBe("repository:a/b:pull,push");
    expect(mergeScopes([pullScope("a/b"), pushScope("a/b"), pullScope("c")])).toEqual([
      "repository:a/b:pull,push",
      "repository:c:pull",
    ]);
    expect(mergeScopes(["registry:catalog:*", pullScope("x")])).toEqual([
      "registry:catalog:*",
      "repository:x:pull",
    ]);
  });
});

describe("retry policy", () => {
  it("reads Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfter("3")).toBe(3000);
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now)).toBe(5000);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });

  it("retries 5xx, 429 and 408, not 4xx or 501", () => {
    expect([500, 502, 503, 504, 429, 408].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 501].some(isRetryableStatus)).toBe(false);
  });

  it("backs off exponentially with jitter, capped, and lets Retry-After win", () => {
    const p = { ...DEFAULT_RETRY, baseDelayMs: 100, maxDelayMs: 1000 };
    for (let a = 0; a < 6; a++) {
      const d = backoffDelay(a, p);
      const ceiling = Math.min(1000, 100 * 2 ** a);
      expect(d).toBeGreaterThanOrEqual(ceiling / 2);
      expect(d).toBeLessThanOrEqual(ceiling);
    }
    expect(backoffDelay(0, p, 700)).toBe(700);
    expect(backoffDelay(0, p, 60_000)).toBe(1000);
  });
});

describe("registry error bodies and links", () => {
  it("parses the distribution error body", () => {
    expect(
      parseErrorBody(
        '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}',
      ),
    ).toEqual([{ code: "MANIFEST_UNKNOWN", message: "manifest unknown", detail: { Tag: "x" } }]);
    expect(parseErrorBody("<html>")).toEqual([]);
  });

  it("follows rel=next Link headers relative to the answering URL", () => {
    expect(
      nextLink('</v2/a/tags/list?last=x&n=2>; rel="next"', "https://r.example:5000/v2/a/tags/list?n=2"),
    ).toBe("https://r.example:5000/v2/a/tags/list?last=x&n=2");
    expect(nextLink('<https://o/x>; rel="prev"', "https://r/")).toBeUndefined();
    expect(nextLink(undefined, "https://r/")).toBeUndefined();
  });
});

describe("credential sources", () => {
  const b64 = (s: string) => Buffer.from(s).toString("base64");

  it("consults explicit files, REGISTRY_AUTH_FILE, XDG containers auth.json, then DOCKER_CONFIG, in that order", () => {
    const files = credentialFiles({
      authFile: "/x/auth.json",
      dockerConfigDir: "/y",
      env: {
        REGISTRY_AUTH_FILE: "/r.json",
        XDG_RUNTIME_DIR: "/run/user/0",
        DOCKER_CONFIG: "/d",
        HOME: "/home/u",
      },
    });
    expect(files).toEqual([
      "/x/auth.json",
      "/y/config.json",
      "/r.json",
      "/run/user/0/containers/auth.json",
      "/d/config.json",
    ]);
    expect(credentialFiles({ env: { HOME: "/home/u" } })).toEqual(["/home/u/.docker/config.json"]);
  });

  it("matches auths by host, with https:// prefixes and the docker.io alias; the first file that has one wins", async () => {
    const d1 = join(tmp, "d1");
    const d2 = join(tmp, "d2");
    mkdirSync(d1);
    mkdirSync(d2);
    writeFileSync(
      join(d1, "config.json"),
      JSON.stringify({
        auths: {
          "https://index.docker.io/v1/": { auth: b64("hub:pw") },
          "other.example": { auth: b64("o:p") },
        },
      }),
    );
    writeFileSync(
      join(d2, "config.json"),
      JSON.stringify({
        auths: {
          "http://reg.example:5000/": { username: "u2", password: "p:2" },
          "other.example": { auth: b64("no:no") },
        },
      }),
    );
    const env = { REGISTRY_AUTH_FILE: join(d1, "config.json"), DOCKER_CONFIG: d2, HOME: tmp };
    expect((await lookupCredential("docker.io", { env })).credential).toEqual({
      username: "hub",
      password: "pw",
    });
    expect((await lookupCredential("reg.example:5000", { env })).credential).toEqual({
      username: "u2",
      password: "p:2",
    });
    const other = await lookupCredential("other.example", { env });
    expect(other.credential).toEqual({ username: "o", password: "p" });
    expect(other.source).toContain(join(d1, "config.json"));
    const none = await lookupCredential("none.example", { env });
    expect(none.credential).toBeUndefined();
    expect(none.searched).toEqual([join(d1, "config.json"), join(d2, "config.json")]);
  });

  it("prefers a namespaced auth.json key for the repository, and reads identity tokens", async () => {
    const f = join(tmp, "ns.json");
    writeFileSync(
      f,
      JSON.stringify({
        auths: {
          "reg.example": { auth: b64("host:wide") },
          "reg.example/team": { auth: b64("team:only") },
          "tok.example": { identitytoken: "refresh-me" },
        },
      }),
    );
    const env = { HOME: tmp };
    expect(
      (await lookupCredential("reg.example", { authFile: f, env }, "team/app")).credential?.username,
    ).toBe("team");
    expect(
      (await lookupCredential("reg.example", { authFile: f, env }, "teamx/app")).credential?.username,
    ).toBe("host");
    expect((await lookupCredential("tok.example", { authFile: f, env })).credential).toEqual({
      identityToken: "refresh-me",
    });
  });

  it("runs credsStore helpers, treats <token> usernames as identity tokens, and survives a missing helper", async () => {
    const bin = join(tmp, "bin");
    mkdirSync(bin);
    writeFileSync(
      join(bin, "docker-credential-unit"),
      '#!/bin/sh\nread h\ncase "$h" in\n  tok.example) echo \'{"Username":"<token>","Secret":"idt"}\' ;;\n' +
        '  pw.example) echo \'{"Username":"me","Secret":"s3"}\' ;;\n  *) echo "credentials not found in native keychain"; exit 1 ;;\nesac\n',
    );
    chmodSync(join(bin, "docker-credential-unit"), 0o755);
    const cfg = join(tmp, "helper");
    mkdirSync(cfg);
    writeFileSync(
      join(cfg, "config.json"),
      JSON.stringify({ credsStore: "unit", credHelpers: { "gone.example": "missing" } }),
    );
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      const env = { DOCKER_CONFIG: cfg, HOME: tmp };
      expect((await lookupCredential("tok.example", { env })).credential).toEqual({ identityToken: "idt" });
      expect((await lookupCredential("pw.example", { env })).credential).toEqual({
        username: "me",
        password: "s3",
      });
      expect((await lookupCredential("nope.example", { env })).credential).toBeUndefined();
      const gone = await lookupCredential("gone.example", { env });
      expect(gone.credential).toBeUndefined();
      expect(gone.searched.join(" ")).toContain("docker-credential-missing");
    } finally {
      process.env.PATH = oldPath;
    }
  });
});

describe("HostAuth token cache", () => {
  it("reuses a token per scope set, fetches again after a refusal, and sends Basic credentials to the realm", async () => {
    const { HostAuth } = await import("../../src/oci/registry/auth.js");
    const calls: Array<{ url: string; authorization?: string }> = [];
    let n = 0;
    const auth = new HostAuth(
      "reg.example",
      async () => ({ credential: { username: "u", password: "p" }, source: "test", searched: ["test"] }),
      async (_method, url, headers) => {
        calls.push({ url, ...(headers.authorization ? { authorization: headers.authorization } : {}) });
        n++;
        return { status: 200, headers: {}, text: JSON.stringify({ token: `t${n}`, expires_in: 300 }) };
      },
      "test-agent",
    );
    expect(await auth.header([pullScope("a")])).toBeUndefined();
    expect(
      await auth.onUnauthorized('Bearer realm="https://auth.example/token",service="reg"', undefined),
    ).toBe(true);
    expect(await auth.header([pullScope("a")])).toBe("Bearer t1");
    expect(await auth.header([pullScope("a")])).toBe("Bearer t1");
    expect(await auth.header([pushScope("a")])).toBe("Bearer t2");
    const u = new URL(calls[0]!.url);
    expect(u.origin + u.pathname).toBe("https://auth.example/token");
    expect(u.searchParams.get("service")).toBe("reg");
    expect(u.searchParams.getAll("scope")).toEqual(["repository:a:pull"]);
    expect(calls[0]!.authorization).toBe(`Basic ${Buffer.from("u:p").toString("base64")}`);
    // the registry refuses t1 (expired): one more token is fetched
    expect(
      await auth.onUnauthorized('Bearer realm="https://auth.example/token",service="reg"', "Bearer t1"),
    ).toBe(true);
    expect(await auth.header([pullScope("a")])).toBe("Bearer t3");
    // Basic: refused credentials are final
    expect(await auth.onUnauthorized('Basic realm="x"', "Basic abc")).toBe(false);
  });
});

describe("a token service that takes one scope per request", () => {
  it("after a refused multi-scope request, every token is asked for the request's own scope alone", async () => {
    const { HostAuth, pullScope, pushScope } = await import("../../src/oci/registry/auth.js");
    const asked: string[][] = [];
    const auth = new HostAuth(
      "reg.example",
      async () => ({ credential: undefined, source: undefined, searched: ["test"] }),
      async (_method, url) => {
        const scopes = new URL(url).searchParams.getAll("scope");
        asked.push(scopes);
        if (scopes.length > 1) return { status: 400, headers: {}, text: '{"errors":[{"code":"DENIED"}]}' };
        return {
          status: 200,
          headers: {},
          text: JSON.stringify({ token: `t-${scopes[0]}`, expires_in: 300 }),
        };
      },
      "test-agent",
    );
    await auth.onUnauthorized('Bearer realm="https://auth.example/token",service="reg"', undefined);
    // a mount: push on b, pull on a; two concurrent requests both land on one scope
    const [h1, h2] = await Promise.all([
      auth.header([pushScope("b"), pullScope("a")]),
      auth.header([pushScope("c"), pullScope("a")]),
    ]);
    expect(h1).toBe("Bearer t-repository:b:pull,push");
    expect(h2).toBe("Bearer t-repository:c:pull,push");
    // once learnt, no request names two scopes
    const before = asked.length;
    expect(await auth.header([pushScope("d"), pullScope("a")])).toBe("Bearer t-repository:d:pull,push");
    expect(asked.slice(before)).toEqual([["repository:d:pull,push"]]);
  });
});
