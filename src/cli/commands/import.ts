import type { RegistryConfig } from "../../config/types.js";
import { writeClusterConfig } from "../../pipeline/cluster-config.js";
import { importBundle } from "../../pipeline/import.js";
import { JOB_INDEX_VARIABLE, parseShardSpec } from "../../pipeline/shard.js";
import { parseRegistryTarget } from "../../targets/mapping.js";
import { assertInputsReadable, assertOutputWritable } from "../inputs.js";
import { onInterrupt } from "../interrupt.js";
import { humanBytes, printJson, printLine } from "../output.js";
import { progressFor } from "../progress.js";
import { printReport, publicKeyFrom, requireSignatureFrom } from "./verify.js";

export interface ImportFlags {
  registry: string;
  artifacts?: string;
  config?: string;
  key?: string;
  requireSignature?: boolean;
  keepSourceRegistry?: boolean;
  flatten?: boolean;
  createRepositories?: boolean;
  caFile: string[];
  cert?: string;
  certKey?: string;
  insecureRegistry?: boolean;
  plainHttp?: boolean;
  s3Endpoint?: string;
  s3PathStyle?: boolean;
  out: string;
  concurrency?: number;
  dryRun?: boolean;
  verifyAll?: boolean;
  shard?: string;
  importJobShards?: number;
  json?: boolean;
}

export async function runImport(input: string, flags: ImportFlags): Promise<void> {
  const shard =
    flags.shard === undefined ? undefined : parseShardSpec(flags.shard, process.env[JOB_INDEX_VARIABLE]);
  const target = parseRegistryTarget(flags.registry);
  // The config loader (and its schema library) loads only when a config is given.
  const importConfig = flags.config
    ? await (await import("../../config/load.js")).loadImportConfig(flags.config)
    : undefined;
  await assertInputsReadable([
    ...(flags.key ? [{ file: flags.key, what: "the public key (--key)" }] : []),
    ...flags.caFile.map((file) => ({ file, what: "the CA certificate (--ca-file)" })),
    ...(flags.cert ? [{ file: flags.cert, what: "the client certificate (--cert)" }] : []),
    ...(flags.certKey ? [{ file: flags.certKey, what: "the client key (--cert-key)" }] : []),
    ...(importConfig?.registries ?? []).flatMap((r) =>
      (["ca", "cert", "key"] as const).flatMap((k) =>
        r[k]
          ? [{ file: r[k], what: `the ${k} of registry ${r.host} (registries[].${k} in ${flags.config})` }]
          : [],
      ),
    ),
  ]);
  const publicKeyPem = await publicKeyFrom(flags);
  if (!flags.dryRun) await assertOutputWritable(flags.out, "the cluster configuration folder (--out)", true);
  const registries: RegistryConfig[] = [...(importConfig?.registries ?? [])];
  // Flags for the target registry win over the config's entry for the same host.
  if (flags.cert || flags.certKey || flags.insecureRegistry || flags.plainHttp || flags.caFile.length > 0) {
    const existing = registries.find((r) => r.host === target.registry);
    const entry: RegistryConfig = existing ?? { host: target.registry, insecure: false, plainHTTP: false };
    if (flags.caFile[0]) entry.ca = flags.caFile[0];
    if (flags.cert) entry.cert = flags.cert;
    if (flags.certKey) entry.key = flags.certKey;
    if (flags.insecureRegistry) entry.insecure = true;
    if (flags.plainHttp) entry.plainHTTP = true;
    if (!existing) registries.push(entry);
  }
  const progress = await progressFor(flags.json || flags.dryRun ? "silent" : "auto", [
    { key: "verifying", title: "Verify the bundle" },
    { key: "pushing", title: "Push to the registry" },
    { key: "publishing", title: "Publish profiles, files, gems and charts" },
  ]);
  const interrupt = onInterrupt(
    "rerun the same command to resume: what already reached the registry is not sent again",
    Boolean(flags.json),
  );
  try {
    const result = await importBundle({
      input,
      publicKeyPem,
      requireSignature: requireSignatureFrom(flags),
      registry: target.registry,
      prefix: target.prefix,
      keepSourceRegistry: flags.keepSourceRegistry,
      flatten: flags.flatten,
      createRepositories: flags.createRepositories,
      mappings: importConfig?.mappings,
      registries,
      caFiles: flags.caFile,
      concurrency: flags.concurrency,
      dryRun: flags.dryRun,
      verifyAll: flags.verifyAll,
      ...(shard ? { shard } : {}),
      artifacts: flags.artifacts,
      artifactOptions: {
        ...(flags.s3Endpoint ? { endpoint: flags.s3Endpoint } : {}),
        ...(flags.s3PathStyle === false ? { forcePathStyle: false } : {}),
        ...(flags.caFile[0] ? { caFile: flags.caFile[0] } : {}),
        // an entry for the S3 endpoint's host:port gives its CA and client certificate
        ...(registries.length > 0 ? { hosts: registries } : {}),
      },
      progress,
      signal: interrupt.signal,
    });
    // Work that ends early on an abort may return rather than throw (a verification that saw its
    // reads stop): the interruption is still what happened.
    interrupt.signal.throwIfAborted();
    await progress.close();
    if (!result.verify.ok) {
      if (flags.json) printJson({ imported: false, verify: result.verify });
      printReport(result.verify, input);
      process.stderr.write(
        result.onePass
          ? "the bundle did not verify: no image manifest or tag was pushed (verified blobs that landed before the failure may remain, untagged)\n"
          : "nothing was pushed: the bundle did not verify\n",
      );
      process.exitCode = 3;
      return;
    }
    for (const w of result.verify.warnings) printLine(`warning: ${w}`);
    if (flags.dryRun) {
      if (flags.json) {
        printJson({
          dryRun: true,
          ...(result.shard ? { shard: result.shard } : {}),
          images: result.images.map(({ source, target, digest, exists }) => ({
            source,
            target,
            digest,
            exists,
          })),
        });
      } else {
        for (const i of result.images) {
          printLine(
            `${i.exists ? "exists" : "push  "}  ${i.source}  →  ${i.target}  ${i.digest}`,
            process.stdout,
          );
        }
        process.stdout.write(
          `${result.shard ? `shard ${result.shard.index}/${result.shard.count}: ` : ""}${result.images.length} roots, ${result.referrers} referrers; nothing pushed (--dry-run)\n`,
        );
      }
      return;
    }
    const written = await writeClusterConfig(flags.out, result, {
      registry: target.registry,
      prefix: target.prefix,
      plainHTTP: Boolean(flags.plainHttp),
      insecure: Boolean(flags.insecureRegistry),
      caFile: flags.caFile[0],
      pathPrefix: registries.find((r) => r.host === target.registry)?.pathPrefix,
      // for the manifests overlay (egress to the artifact repository, signing key ConfigMap)
      artifacts: flags.artifacts,
      s3Endpoint: flags.s3Endpoint,
      keyFile: flags.key,
      ...(flags.importJobShards ? { importJobShards: flags.importJobShards } : {}),
    });
    const s = result.stats;
    for (const p of result.profiles ?? []) {
      if (!flags.json) {
        printLine(
          `profile ${p.name} ${p.version}: ${p.url ? `${p.url}${p.uploaded ? "" : " (already there)"}` : "no --artifacts given"}; OCI artifact ${p.artifact}`,
        );
      }
    }
    for (const f of result.files ?? []) {
      if (!flags.json) {
        process.stderr.write(
          `file ${f.name} (${f.platform}) sha256 ${f.sha256}: ${f.url ? `${f.url}${f.uploaded ? "" : " (already there)"}` : "no --artifacts given"}; OCI artifact ${f.artifact}\n`,
        );
      }
    }
    for (const c of result.charts ?? []) {
      if (!flags.json) {
        process.stderr.write(
          `chart ${c.name} ${c.version}: helm install RELEASE ${c.oci} --version ${c.version} -f ${flags.out}/values/${c.name}.yaml${c.url ? `; Helm repository ${c.repository}` : ""}\n`,
        );
      }
    }
    const gems = result.gems ?? [];
    if (!flags.json && gems.length > 0) {
      const source = gems[0]!.source;
      process.stderr.write(
        `${gems.length} gems: ${source ? `gem install --clear-sources --source ${source}/ NAME (${gems.filter((g) => g.uploaded).length} uploaded)` : "no --artifacts given"}\n`,
      );
    }
    if (flags.json) {
      printJson({
        imported: true,
        ...(result.shard ? { shard: result.shard } : {}),
        images: result.images.map(({ source, target, digest }) => ({ source, target, digest })),
        profiles: result.profiles ?? [],
        files: result.files ?? [],
        gems: result.gems ?? [],
        charts: (result.charts ?? []).map(({ values: _values, ...c }) => c),
        stats: s,
        out: written,
      });
    } else if (result.shard) {
      const { index, count, items } = result.shard;
      process.stderr.write(
        `shard ${index}/${count}: imported ${items.length} of ${result.inventory?.items.length ?? items.length} items into ${flags.registry}: ${s.blobsUploaded} blobs uploaded (${humanBytes(s.bytesUploaded)}), ${s.blobsMounted} mounted, ${s.blobsSkipped} already there, ${s.manifestsPushed} manifests pushed in ${s.seconds.toFixed(1)}s\ncluster configuration (every item) written to ${flags.out}/\n`,
      );
    } else {
      process.stderr.write(
        `imported ${result.images.length} roots (${result.referrers} referrers) into ${flags.registry}: ${s.blobsUploaded} blobs uploaded (${humanBytes(s.bytesUploaded)}), ${s.blobsMounted} mounted, ${s.blobsSkipped} already there, ${s.manifestsPushed} manifests pushed in ${s.seconds.toFixed(1)}s${s.retries > 0 ? ` (${s.retries} ${s.retries === 1 ? "retry" : "retries"}${s.uploadsRestarted > 0 ? `, ${s.uploadsRestarted} uploads restarted` : ""})` : ""}\ncluster configuration written to ${flags.out}/\n`,
      );
    }
  } catch (err) {
    const reason = interrupt.reason(err);
    await progress.close(reason);
    throw reason;
  } finally {
    interrupt.dispose();
  }
}
