import { readFile } from "node:fs/promises";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { pipeline } from "node:stream/promises";
import type { BundleReader } from "../bundle/archive/reader.js";
import { ANNOTATION_REF_NAME, type Descriptor, manifestMediaType } from "../oci/descriptor.js";
import { MAX_MANIFEST_BYTES } from "../oci/mediatypes.js";
import { parseReference } from "../oci/reference.js";
import { BundleArchive, parseIndexJson } from "../store/bundle.js";
import { readBounded } from "../store/streams.js";

export interface ServeOptions {
  reader: BundleReader;
  label: string;
  host: string;
  port: number;
  tlsCert?: string;
  tlsKey?: string;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/**
 * A read-only OCI distribution endpoint over a verified bundle: /v2/, manifests by tag or digest,
 * blobs, tag lists. Repositories are the bundle's full source repositories (e.g.
 * docker.io/library/busybox); a unique suffix (library/busybox) also works. Every byte served is
 * checked against its digest while it streams.
 */
export async function serveBundle(opts: ServeOptions): Promise<Server> {
  const index = parseIndexJson(await opts.reader.readSmall("index.json", MAX_MANIFEST_BYTES), opts.label);
  const archive = new BundleArchive(opts.reader, index, opts.label);
  const tagsByRepo = new Map<string, Map<string, Descriptor>>();
  for (const m of index.manifests) {
    const name = m.annotations?.[ANNOTATION_REF_NAME];
    if (!name) continue;
    const ref = parseReference(name);
    const repo = `${ref.registry}/${ref.repository}`;
    const tags = tagsByRepo.get(repo) ?? new Map<string, Descriptor>();
    if (ref.tag) tags.set(ref.tag, m);
    tagsByRepo.set(repo, tags);
  }
  const findRepo = (name: string): string | undefined => {
    if (tagsByRepo.has(name)) return name;
    const matches = [...tagsByRepo.keys()].filter((r) => r.endsWith(`/${name}`));
    return matches.length === 1 ? matches[0] : undefined;
  };

  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader("Docker-Distribution-API-Version", "registry/2.0");
    const url = new URL(req.url ?? "/", "http://bundle");
    if (req.method !== "GET" && req.method !== "HEAD")
      return error(res, 405, "UNSUPPORTED", "this registry is read-only");
    if (url.pathname === "/v2/" || url.pathname === "/v2") return json(res, 200, {}, req.method);
    const m = /^\/v2\/(.+)\/(manifests|blobs|tags)\/(.+)$/.exec(url.pathname);
    if (!m) return error(res, 404, "NOT_FOUND", "unknown path");
    const [, name, kind, ref] = m as unknown as [string, string, string, string];
    const repo = findRepo(name);
    if (!repo) return error(res, 404, "NAME_UNKNOWN", `repository ${name} is not in the bundle`);
    if (kind === "tags") {
      return json(res, 200, { name, tags: [...(tagsByRepo.get(repo)?.keys() ?? [])].sort() }, req.method);
    }
    let desc: Descriptor | undefined;
    if (DIGEST.test(ref)) {
      const root = index.manifests.find((d) => d.digest === ref);
      desc = root ? { mediaType: root.mediaType, digest: ref, size: root.size } : undefined;
      if (!desc) {
        const file = (await opts.reader.list()).find((f) => f.path === `blobs/sha256/${ref.slice(7)}`);
        if (file) desc = { mediaType: "application/octet-stream", digest: ref, size: file.size };
      }
    } else if (kind === "manifests") {
      const tagged = tagsByRepo.get(repo)?.get(ref);
      if (tagged) desc = { mediaType: tagged.mediaType, digest: tagged.digest, size: tagged.size };
    }
    if (!desc) {
      return error(
        res,
        404,
        kind === "manifests" ? "MANIFEST_UNKNOWN" : "BLOB_UNKNOWN",
        `${ref} is not in ${repo}`,
      );
    }
    if (kind === "manifests") {
      if (desc.size > MAX_MANIFEST_BYTES)
        return error(res, 404, "MANIFEST_UNKNOWN", `${ref} is not a manifest`);
      const bytes = await readBounded(await archive.fetch(desc), MAX_MANIFEST_BYTES, desc.digest);
      const mediaType = manifestMediaType(bytes);
      if (!mediaType) return error(res, 404, "MANIFEST_UNKNOWN", `${ref} is not a manifest`);
      res.writeHead(200, {
        "Content-Type": mediaType,
        "Content-Length": bytes.length,
        "Docker-Content-Digest": desc.digest,
      });
      res.end(req.method === "HEAD" ? undefined : bytes);
      return;
    }
    res.writeHead(200, {
      "Content-Type": "application/octet-stream",
      "Content-Length": desc.size,
      "Docker-Content-Digest": desc.digest,
    });
    if (req.method === "HEAD") return void res.end();
    // A mismatch found at the end destroys the response: the client sees a broken transfer, not bad bytes.
    await pipeline(await archive.fetch(desc), res);
  };

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handler(req, res).catch((err: Error) => {
      if (!res.headersSent) error(res, 500, "UNKNOWN", err.message);
      else res.destroy(err);
    });
  };
  const server =
    opts.tlsCert && opts.tlsKey
      ? createHttpsServer(
          { cert: await readFile(opts.tlsCert), key: await readFile(opts.tlsKey), minVersion: "TLSv1.2" },
          listener,
        )
      : createHttpServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return server;
}

function json(res: ServerResponse, status: number, body: unknown, method?: string): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(method === "HEAD" ? undefined : text);
}

function error(res: ServerResponse, status: number, code: string, message: string): void {
  json(res, status, { errors: [{ code, message }] });
}
