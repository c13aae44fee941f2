/**
 * A small HTTP server in front of a real one (the plain test registry) that misbehaves on a
 * deterministic schedule: it resets or closes connections in the middle of a body, lies about
 * Content-Length, stalls, answers 5xx or 429 with Retry-After, ignores Range, cuts blob uploads in
 * the middle of their body, or refuses cross-repository mounts (a mount request becomes a plain
 * upload, as a registry that cannot mount answers it). Everything else is forwarded unchanged. It
 * counts what it did, so a test can assert the faults really happened.
 *
 * Point the code under test at `proxy.host` as if it were the registry (plainHTTP for that host).
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type Fault =
  /** Answer this status without asking upstream (Retry-After in seconds for 429/503 when given). */
  | { kind: "status"; status: 500 | 502 | 503 | 429; retryAfter?: number }
  /** Send the headers and `at` (0..1) of the body, then reset the connection (TCP RST). */
  | { kind: "reset"; at?: number }
  /** Send the headers with the right Content-Length and `at` of the body, then close the connection. */
  | { kind: "truncate"; at?: number }
  /** Claim Content-Length `at` of the real size and send that many bytes: a short body that looks whole. */
  | { kind: "wrong-length"; at?: number }
  /** Send the headers and `at` of the body, then no byte for `seconds`, then close the connection. */
  | { kind: "stall"; seconds: number; at?: number }
  /** Blob uploads (PUT/PATCH with a body): take `at` of the request body, then reset the connection. */
  | { kind: "cut-upload"; at?: number };

export interface ProxiedRequest {
  method: string;
  path: string;
  /** The Range header the client sent, if any. */
  range: string | undefined;
  /** 1-based number of this request among all requests. */
  request: number;
  /** 1-based number of this request among blob GETs (Range requests included); 0 for other requests. */
  blobGet: number;
  /** 1-based number of this request among blob uploads with a body (PUT/PATCH); 0 for other requests. */
  upload: number;
}

export type Schedule = (r: ProxiedRequest) => Fault | undefined;

export interface FaultProxyOptions {
  /** host:port of the real server. */
  upstream: string;
  /** Which fault, if any, this request gets. */
  schedule?: Schedule | undefined;
  /** false: drop Range headers before forwarding, so every answer is a whole 200 (default true). */
  range?: boolean;
  /**
   * false: answer cross-repository mount requests with a new upload session (202), never a mount;
   * a status (401, 403, …): refuse them with it, as some registries do.
   */
  mount?: boolean | 401 | 403 | 404;
}

export interface FaultCounts {
  requests: number;
  blobGets: number;
  /** Blob GETs that carried a Range header. */
  rangeRequests: number;
  /** Blob uploads with a body (PUT/PATCH). */
  uploads: number;
  /** Mount requests turned into plain uploads (`mount: false`). */
  mountsRefused: number;
  /** Requests by method and path without the query, e.g. "GET /v2/x/blobs/sha256:…". */
  seen: string[];
  /** Faults by name: "reset", "truncate", "wrong-length", "stall", "status-503", … */
  faults: Record<string, number>;
}

const BLOB_GET = /^\/v2\/.+\/blobs\/sha256:[a-f0-9]{64}$/;
const UPLOAD = /^\/v2\/.+\/blobs\/uploads\/.+$/;

function isChunked(req: IncomingMessage): boolean {
  return /chunked/i.test(String(req.headers["transfer-encoding"] ?? ""));
}

export class FaultProxy {
  readonly counts: FaultCounts = {
    requests: 0,
    blobGets: 0,
    rangeRequests: 0,
    uploads: 0,
    mountsRefused: 0,
    seen: [],
    faults: {},
  };
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(
    private readonly server: Server,
    readonly host: string,
    /** Replaceable between runs, e.g. undefined for a run without faults. */
    public schedule: Schedule | undefined,
  ) {}

  /** Total number of faults injected. */
  get injected(): number {
    return Object.values(this.counts.faults).reduce((a, b) => a + b, 0);
  }

  static async start(o: FaultProxyOptions): Promise<FaultProxy> {
    const [upHost, upPort] = splitHost(o.upstream);
    let proxy: FaultProxy | undefined;
    const server = createServer((req, res) => {
      const self = proxy as FaultProxy;
      let path = req.url ?? "/";
      const bare = path.split("?")[0] ?? "";
      const isBlobGet = req.method === "GET" && BLOB_GET.test(bare);
      const length = Number(req.headers["content-length"] ?? 0);
      const isUpload =
        (req.method === "PUT" || req.method === "PATCH") &&
        UPLOAD.test(bare) &&
        (length > 0 || isChunked(req));
      self.counts.requests++;
      self.counts.seen.push(`${req.method} ${bare}`);
      if (isBlobGet) {
        self.counts.blobGets++;
        if (req.headers.range) self.counts.rangeRequests++;
      }
      if (isUpload) self.counts.uploads++;
      if (o.mount !== undefined && o.mount !== true && req.method === "POST" && /[?&]mount=/.test(path)) {
        self.counts.mountsRefused++;
        if (typeof o.mount === "number") {
          req.resume();
          res.writeHead(o.mount, { "content-type": "application/json" });
          res.end(JSON.stringify({ errors: [{ code: "DENIED", message: "mount refused" }] }));
          return;
        }
        path = bare;
      }
      const info: ProxiedRequest = {
        method: req.method ?? "GET",
        path,
        range: req.headers.range,
        request: self.counts.requests,
        blobGet: isBlobGet ? self.counts.blobGets : 0,
        upload: isUpload ? self.counts.uploads : 0,
      };
      const fault = self.schedule?.(info);
      if (fault?.kind === "status") {
        self.note(`status-${fault.status}`);
        req.resume();
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (fault.retryAfter !== undefined) headers["retry-after"] = String(fault.retryAfter);
        res.writeHead(fault.status, headers);
        res.end(JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "injected fault" }] }));
        return;
      }
      if (fault?.kind === "cut-upload") {
        if (isUpload) {
          self.cutUpload(req, length, fault.at ?? 0.5);
          return;
        }
      }
      const headers = { ...req.headers };
      if (o.range === false) delete headers.range;
      const up = httpRequest(
        // a fresh upstream connection per request: no pooled socket outlives a fault or a client gone away
        { host: upHost, port: upPort, method: req.method, path, headers, agent: false },
        (ur) => self.answer(req, ur, res, fault),
      );
      up.on("error", () => res.destroy());
      res.on("close", () => up.destroy());
      req.pipe(up);
    });
    server.on("connection", (s: Socket) => {
      const self = proxy as FaultProxy;
      self.sockets.add(s);
      s.on("close", () => self.sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    proxy = new FaultProxy(server, `127.0.0.1:${(server.address() as AddressInfo).port}`, o.schedule);
    return proxy;
  }

  private note(name: string): void {
    this.counts.faults[name] = (this.counts.faults[name] ?? 0) + 1;
  }

  /** Read `at` of the request body (at least one byte), then reset the connection: an upload cut short. */
  private cutUpload(req: IncomingMessage, length: number, at: number): void {
    const cut = Math.max(1, Math.floor((length || 1024 * 1024) * at));
    this.note("cut-upload");
    let got = 0;
    req.on("data", (chunk: Buffer) => {
      got += chunk.length;
      if (got >= cut) req.socket.resetAndDestroy();
    });
    req.on("end", () => req.socket.resetAndDestroy());
  }

  private answer(
    req: IncomingMessage,
    ur: IncomingMessage,
    res: import("node:http").ServerResponse,
    fault: Fault | undefined,
  ): void {
    // (status faults were answered before asking upstream)
    const status = ur.statusCode ?? 502;
    const length = Number(ur.headers["content-length"]);
    // Body faults apply to answers with a body whose size is known; others pass unharmed.
    if (
      !fault ||
      fault.kind === "status" ||
      fault.kind === "cut-upload" ||
      req.method === "HEAD" ||
      status >= 300 ||
      !Number.isFinite(length) ||
      length < 2
    ) {
      res.writeHead(status, ur.headers);
      ur.pipe(res);
      return;
    }
    const cut = Math.max(1, Math.floor(length * (fault.at ?? 0.5)));
    const headers = { ...ur.headers };
    if (fault.kind === "wrong-length") headers["content-length"] = String(cut);
    this.note(fault.kind);
    res.writeHead(status, headers);
    let sent = 0;
    const socket = res.socket;
    ur.on("data", (chunk: Buffer) => {
      if (sent >= cut) return;
      const part = chunk.subarray(0, cut - sent);
      sent += part.length;
      if (sent < cut) {
        res.write(part);
        return;
      }
      ur.destroy();
      switch (fault.kind) {
        case "wrong-length":
          res.end(part);
          return;
        case "reset":
          // the bytes written so far leave before the reset
          res.write(part, () => socket?.resetAndDestroy());
          return;
        case "truncate":
          res.write(part, () => socket?.destroy());
          return;
        case "stall": {
          res.write(part);
          const t = setTimeout(() => {
            this.timers.delete(t);
            socket?.destroy();
          }, fault.seconds * 1000);
          this.timers.add(t);
          return;
        }
      }
    });
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

function splitHost(hostPort: string): [string, number] {
  const i = hostPort.lastIndexOf(":");
  return [hostPort.slice(0, i), Number(hostPort.slice(i + 1))];
}

/**
 * The proxy's default schedule, the one a whole run is measured against: every 4th blob download
 * from byte 0 is cut halfway (reset, close and short Content-Length in turn), every 4th blob upload
 * is cut halfway, and of the other requests one in eight answers 503 and one in eight 429 with
 * Retry-After: 1. Each call returns a fresh schedule with its own counters.
 */
export function defaultSchedule(): Schedule {
  const cuts = ["reset", "truncate", "wrong-length"] as const;
  let fresh = 0;
  let other = 0;
  return (r) => {
    if (r.blobGet > 0 && !r.range) {
      fresh++;
      if (fresh % 4 === 0) return { kind: cuts[(fresh / 4 - 1) % cuts.length] ?? "reset", at: 0.5 };
    }
    if (r.upload > 0) return r.upload % 4 === 1 ? { kind: "cut-upload", at: 0.5 } : undefined;
    other++;
    if (other % 8 === 3) return { kind: "status", status: 503 };
    if (other % 8 === 7) return { kind: "status", status: 429, retryAfter: 1 };
    return undefined;
  };
}
