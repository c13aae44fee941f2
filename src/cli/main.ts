#!/usr/bin/env node
import { Command, CommanderError, Option } from "commander";
import { exitCodeOf } from "../errors.js";
import { VERSION } from "../version.js";
import { printError } from "./output.js";

/**
 * Every command is defined here and loaded lazily, so `airgap --help` stays fast and a command's
 * dependencies load only when it runs. Commands only map flags to pipeline options and print.
 */
export function buildProgram(): Command {
  const program = new Command("airgap")
    .description(
      "Carry the Secure CINC Auditor scanning solution across an air gap as one signed, verified bundle.",
    )
    .version(VERSION, "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .configureHelp({ sortSubcommands: false });

  const bundle = program.command("bundle").description("create, verify, inspect and import bundles");

  bundle
    .command("create")
    .description("resolve bundle.config.yaml, pull everything it names and write one signed bundle")
    .option("-c, --config <file>", "bundle config", "bundle.config.yaml")
    .option("-o, --output <out>", "output: DIR, FILE.tar, FILE.tar.zst or - for stdout", "bundle")
    .option("--key <file>", "cosign private key to sign SHA256SUMS with (password from COSIGN_PASSWORD)")
    .option("--platform <list>", "platforms for images, comma separated (overrides the config's platforms)")
    .option("--since <bundle>", "only content not already in this older bundle (incremental)")
    .option("--split <size>", "split a tar into parts of at most SIZE (e.g. 4G, 700M)")
    .addOption(new Option("--compress <kind>", "compress a tar output").choices(["zstd", "none"]))
    .option("--cache <dir>", "content cache (an OCI layout); default $XDG_CACHE_HOME/cinc-airgap")
    .option("--concurrency <n>", "parallel transfers", parsePositiveInt)
    .option("--ca-file <file>", "extra CA certificate (PEM) trusted for every source", collect, [])
    .option("--dry-run", "print the plan: every item, source, digest, platforms, size, cached; pull nothing")
    .option("--force", "replace an existing output")
    .option("--json", "machine-readable output on stdout")
    .action(async (opts) => (await import("./commands/create.js")).runCreate(opts));

  bundle
    .command("verify")
    .description("check a bundle's signature, checksums, digests and references (exit 3 on any failure)")
    .argument("<bundle>", "DIR, FILE.tar, FILE.tar.zst, split parts, or - for stdin")
    .option("--key <file>", "cosign public key the bundle must be signed with")
    .option("--require-signature", "fail when no --key is given (also AIRGAP_REQUIRE_SIGNATURE=1)")
    .option("--concurrency <n>", "parallel hashing", parsePositiveInt)
    .option("--json", "machine-readable report on stdout")
    .action(async (input, opts) => (await import("./commands/verify.js")).runVerify(input, opts));

  bundle
    .command("inspect")
    .description("list what a bundle holds: kind, name, source, digest, platforms, size, shared bytes")
    .argument("<bundle>", "DIR, FILE.tar, FILE.tar.zst, split parts, or - for stdin")
    .option("--json", "machine-readable output on stdout")
    .action(async (input, opts) => (await import("./commands/inspect.js")).runInspect(input, opts));

  bundle
    .command("import")
    .description("verify a bundle, then push it into the internal registry and artifact repository")
    .argument("<bundle>", "DIR, FILE.tar, FILE.tar.zst, split parts, or - for stdin")
    .requiredOption("--registry <target>", "HOST[:PORT][/PREFIX] of the internal registry")
    .option(
      "--artifacts <url>",
      "artifact repository for profiles and files: s3://BUCKET/PREFIX or https://HOST/PATH/",
    )
    .option("--config <file>", "import config (registries, mappings) or a bundle config")
    .option("--key <file>", "cosign public key the bundle must be signed with")
    .option("--require-signature", "fail when no --key is given (also AIRGAP_REQUIRE_SIGNATURE=1)")
    .option("--keep-source-registry", "keep the source host as the first path component")
    .option("--flatten", "map every repository to one path component (registries with flat namespaces)")
    .option("--ca-file <file>", "CA certificate (PEM) of the target registry", collect, [])
    .option("--cert <file>", "client certificate (PEM) for mTLS")
    .option("--cert-key <file>", "client key (PEM) for mTLS")
    .option("--insecure-registry", "skip TLS verification for the target registry (named explicitly)")
    .option("--plain-http", "use plain HTTP for the target registry")
    .option("--s3-endpoint <url>", "S3 endpoint (default AWS_ENDPOINT_URL_S3)")
    .option("--no-s3-path-style", "use virtual-hosted S3 addressing with a custom endpoint")
    .option(
      "--out <dir>",
      "where to write images.json, hosts.toml, registries.conf, Helm values",
      "airgap-out",
    )
    .option("--concurrency <n>", "parallel transfers", parsePositiveInt)
    .option("--dry-run", "list what would be pushed where and what already exists; push nothing")
    .option(
      "--verify-all",
      "hash the whole bundle before pushing anything (default: each blob is verified as it uploads, blobs the registry has are not read)",
    )
    .option("--json", "machine-readable output on stdout")
    .action(async (input, opts) => (await import("./commands/import.js")).runImport(input, opts));

  bundle
    .command("diff")
    .description("compare two bundles: items added, removed and changed")
    .argument("<old>")
    .argument("<new>")
    .option("--json", "machine-readable output on stdout")
    .action(async (oldB, newB, opts) => (await import("./commands/diff.js")).runDiff(oldB, newB, opts));

  bundle
    .command("serve")
    .description("serve a bundle as a read-only OCI registry")
    .argument("<bundle>")
    .option("--listen <addr>", "address to listen on", "127.0.0.1:5000")
    .option("--tls-cert <file>", "serve HTTPS with this certificate (PEM)")
    .option("--tls-key <file>", "key of --tls-cert (PEM)")
    .option("--key <file>", "cosign public key the bundle must be signed with (checked before serving)")
    .option("--require-signature", "fail when no --key is given (also AIRGAP_REQUIRE_SIGNATURE=1)")
    .action(async (input, opts) => (await import("./commands/serve.js")).runServe(input, opts));

  const key = program.command("key").description("manage cosign-compatible signing keys");
  key
    .command("generate")
    .description(
      "write PREFIX.key (encrypted, mode 0600) and PREFIX.pub; password from COSIGN_PASSWORD or a prompt",
    )
    .option("--output-prefix <prefix>", "file name prefix", "cosign")
    .option("--force", "overwrite existing key files")
    .action(async (opts) => (await import("./commands/key.js")).runKeyGenerate(opts));

  return program;
}

function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new CommanderError(2, "airgap.invalidArgument", `"${value}" is not a positive integer`);
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version "errors" are successes; the rest are usage errors
      return err.exitCode === 0 ? 0 : 2;
    }
    printError(err, argv.includes("--json"));
    return exitCodeOf(err);
  }
}

const code = await main(process.argv);
process.exitCode = code;
