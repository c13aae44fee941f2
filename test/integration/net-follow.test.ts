/**
 * Redirects of plain HTTP clients (profile downloads) follow the one rule of net/follow.ts:
 * credentials never reach another origin, and https never turns into http.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { download } from "../../src/sources/profiles/http.js";

let tmp: string;
const servers: Server[] = [];

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void, tls = false) {
  const srv = tls
    ? createHttpsServer(
        { key: readFileSync(join(tmp, "s.key")), cert: readFileSync(join(tmp, "s.crt")) },
        handler,
      )
    : createServer(handler);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  servers.push(srv as Server);
  return `${tls ? "https" : "http"}://127.0.0.1:${(srv.address() as AddressInfo).port}`;
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "airgap-follow-"));
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"].concat([
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      join(tmp, "s.key"),
      "-out",
      join(tmp, "s.crt"),
    ]),
    { stdio: "ignore" },
  );
});

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  rmSync(tmp, { recursive: true, force: true });
});

describe("profile downloads follow redirects without leaking credentials", () => {
  it("a redirect to another origin is followed without the Basic credentials of the URL", async () => {
    const seen: Array<string | undefined> = [];
    const other = await listen((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200).end("profile bytes");
    });
    const first: Array<string | undefined> = [];
    const start = await listen((req, res) => {
      first.push(req.headers.authorization);
      res.writeHead(302, { location: `${other}/archive.tar.gz` }).end();
    });
    const url = new URL(`${start}/p.tar.gz`);
    url.username = "alice";
    url.password = "s3cret";
    const got = await download(url.toString(), join(tmp, "p.tar.gz"));
    expect(readFileSync(got.path, "utf8")).toBe("profile bytes");
    expect(first[0]).toBe(`Basic ${Buffer.from("alice:s3cret").toString("base64")}`);
    expect(seen).toEqual([undefined]);
  });

  it("an https URL redirecting to http is refused", async () => {
    const seen: string[] = [];
    const plain = await listen((req, res) => {
      seen.push(req.url ?? "");
      res.writeHead(200).end("x");
    });
    const secure = await listen((_req, res) => {
      res.writeHead(301, { location: `${plain}/p.tar.gz` }).end();
    }, true);
    const err = await download(`${secure}/p.tar.gz`, join(tmp, "q.tar.gz"), {
      caFile: join(tmp, "s.crt"),
    }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain("from https to plain http");
    expect(seen).toEqual([]);
  });
});
