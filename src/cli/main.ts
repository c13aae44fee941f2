#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { AirgapError, exitCodeOf, InterruptedError, UsageError } from "../errors.js";
import { VERSION } from "../version.js";
import { exitAfterCleanup } from "./interrupt.js";
import { printError } from "./output.js";

/**
 * Every command is defined here and loaded lazily, so `airgap --help` stays fast and a command's
 * dependencies load only when it runs. Commands only map flags to pipeline options and print.
 */
/**
 * The S3 settings of a command that reads or writes `s3://` bundles: the artifact repository's
 * flags (import has them already), beside AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_CA_BUNDLE and the
 * SDK's credential chain.
 */
function withS3Options(cmd: Command, caFile = true): Command {
  cmd
    .option("--s3-endpoint <url>", "S3 endpoint for s3:// bundles (default AWS_ENDPOINT_URL_S3)")
    .option("--no-s3-path-style", "use virtual-hosted S3 addressing with a custom endpoint");
  if (caFile) cmd.option("--ca-file <file>", "CA certificate (PEM) of the S3 endpoint", collect, []);
  return cmd;
}

export function buildProgram(): Command {
  const program = new Command("airgap")
    .description(
      "Carry the Secure CINC Auditor scanning solution across an air gap as one signed, verified bundle.",
    )
    .version(VERSION, "-V, --version")
    .configureHelp({ sortSubcommands: false })
    // Set before any subcommand exists, so every command inherits them: commander's own error text
    // is replaced by one line from usageMessage() (exit 2), never printed as is.
    .exitOverride()
    .configureOutput({ writeErr: () => {}, outputError: () => {} });

  const bundle = program.command("bundle").description("create, verify, inspect and import bundles");

  const create = bundle
    .command("create")
    .description("resolve bundle.config.yaml, pull everything it names and write one signed bundle")
    .option("-c, --config <file>", "bundle config", "bundle.config.yaml")
    .option(
      "-o, --output <out>",
      "output: DIR, FILE.tar, FILE.tar.zst, s3://BUCKET/KEY[.tar|.tar.zst] or - for stdout",
      "bundle",
    )
    .option("--key <file>", "cosign private key to sign SHA256SUMS with (password from COSIGN_PASSWORD)")
    .option("--platform <list>", "platforms for images, comma separated (overrides the config's platforms)")
    .option("--since <bundle>", "only content not already in this older bundle (incremental)")
    .option("--split <size>", "split a tar into parts of at most SIZE (e.g. 4G, 700M)")
    .addOption(new Option("--compress <kind>", "compress a tar output").choices(["zstd", "none"]))
    .option("--cache <dir>", "content cache (an OCI layout); default $XDG_CACHE_HOME/cinc-airgap")
    .option("--concurrency <n>", "parallel transfers", parsePositiveInt)
    .option("--ca-file <file>", "extra CA certificate (PEM) trusted for every source", collect, [])
    .option("--dry-run", "print the plan: every item, source, digest, platforms, size, cached; pull nothing")
    .option(
      "--offline",
      "with --dry-run: plan from the config alone, opening no connection; marks what needs the network to pin",
    )
    .option(
      "--allow-unpinned",
      "accept files without a sha256 in the config: record the one downloaded, warn",
    )
    .option("--force", "replace an existing output")
    .option("--json", "machine-readable output on stdout");
  withS3Options(create, false).action(async (opts) => (await import("./commands/create.js")).runCreate(opts));

  const verify = bundle
    .command("verify")
    .description("check a bundle's signature, checksums, digests and references (exit 3 on any failure)")
    .argument("<bundle>", "DIR, FILE.tar, FILE.tar.zst, split parts, s3://BUCKET/KEY, or - for stdin")
    .option("--key <file>", "cosign public key the bundle must be signed with")
    .option("--require-signature", "fail when no --key is given (also AIRGAP_REQUIRE_SIGNATURE=1)")
    .option("--concurrency <n>", "parallel hashing", parsePositiveInt)
    .option("--json", "machine-readable report on stdout");
  withS3Options(verify).action(async (input, opts) =>
    (await import("./commands/verify.js")).runVerify(input, opts),
  );

  const inspect = bundle
    .command("inspect")
    .description("list what a bundle holds: kind, name, source, digest, platforms, size, shared bytes")
    .argument("<bundle>", "DIR, FILE.tar, FILE.tar.zst, split parts, s3://BUCKET/KEY, or - for stdin")
    .option("--json", "machine-readable output on stdout");
  withS3Options(inspect).action(async (input, opts) =>
    (await import("./commands/inspect.js")).runInspect(input, opts),
  );

  bundle
    .command("import")
    .description("verify a bundle, then push it into the internal registry and artifact repository")
    .argument("<bundle>", "DIR, FILE.tar, FILE.tar.zst, split parts, s3://BUCKET/KEY, or - for stdin")
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
    .option(
      "--create-repositories",
      "create what the target registry lacks where it has an API for it (Harbor projects)",
    )
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
    .option(
      "--dry-run",
      "list what would be pushed where and what already exists, and check that every target repository may be written (missing projects/repositories, paths too deep; exit 2 with the list); push nothing",
    )
    .option(
      "--verify-all",
      "hash the whole bundle before pushing anything (default: each blob is verified as it uploads, blobs the registry has are not read)",
    )
    .option(
      "--shard <I/N>",
      "push only part I (0-based) of N of the items, for N imports at once; auto/N takes I from JOB_COMPLETION_INDEX (Kubernetes Indexed Job)",
    )
    .option(
      "--import-job-shards <n>",
      "enable the sharded import Job in the --out manifests overlay, with n workers",
      parsePositiveInt,
    )
    .option("--json", "machine-readable output on stdout")
    .action(async (input, opts) => (await import("./commands/import.js")).runImport(input, opts));

  const report = bundle
    .command("report")
    .description(
      "verify a bundle, then write the review document: every item, digest, size, signature check, totals, SHA256SUMS digest, key fingerprint",
    )
    .argument("<bundle>", "DIR, FILE.tar, FILE.tar.zst, split parts, s3://BUCKET/KEY, or - for stdin")
    .option(
      "-o, --output <file>",
      "write FILE.md (Markdown) or FILE.html (one self-contained page); default Markdown on stdout",
    )
    .option(
      "--key <file>",
      "cosign public key the bundle must be signed with (its fingerprint goes in the report)",
    )
    .option("--require-signature", "fail when no --key is given (also AIRGAP_REQUIRE_SIGNATURE=1)")
    .option("--concurrency <n>", "parallel hashing", parsePositiveInt)
    .option("--json", "the same data as JSON on stdout");
  withS3Options(report).action(async (input, opts) =>
    (await import("./commands/report.js")).runReport(input, opts),
  );

  const diff = bundle
    .command("diff")
    .description("compare two bundles: items added, removed and changed")
    .argument("<old>")
    .argument("<new>")
    .option("--json", "machine-readable output on stdout");
  withS3Options(diff).action(async (oldB, newB, opts) =>
    (await import("./commands/diff.js")).runDiff(oldB, newB, opts),
  );

  const serve = bundle
    .command("serve")
    .description("serve a bundle as a read-only OCI registry")
    .argument("<bundle>")
    .option("--listen <addr>", "address to listen on", "127.0.0.1:5000")
    .option("--tls-cert <file>", "serve HTTPS with this certificate (PEM)")
    .option("--tls-key <file>", "key of --tls-cert (PEM)")
    .option("--key <file>", "cosign public key the bundle must be signed with (checked before serving)")
    .option("--require-signature", "fail when no --key is given (also AIRGAP_REQUIRE_SIGNATURE=1)");
  withS3Options(serve).action(async (input, opts) =>
    (await import("./commands/serve.js")).runServe(input, opts),
  );

  program
    .command("runner-image")
    .description(
      "build the import Job's runner image without a container engine: a Node base image plus one layer with the single-file airgap, pushed to --to",
    )
    .requiredOption(
      "--base <ref>",
      "Node base image, pinned by digest (e.g. docker.io/library/node:20-…@sha256:…)",
    )
    .requiredOption(
      "--to <ref>",
      "where to push it, with a tag (e.g. registry.internal:5000/scanner/cinc-airgap/airgap:VERSION)",
    )
    .option("--platform <list>", "platforms to build from a multi-platform base", "linux/amd64,linux/arm64")
    .option("--config <file>", "import or bundle config: TLS and plain-HTTP settings of the registries")
    .option("--ca-file <file>", "extra CA certificate (PEM) trusted for both registries", collect, [])
    .option("--json", "machine-readable output on stdout")
    .action(async (opts) => (await import("./commands/runner-image.js")).runRunnerImage(opts));

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

/** Concurrency and the like: 1 to 1024, digits only (no 1.5, -1, 1e2, 0x10). */
export const MAX_CONCURRENCY = 1024;
function parsePositiveInt(value: string): number {
  const n = /^[0-9]{1,5}$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!(n >= 1 && n <= MAX_CONCURRENCY))
    throw new InvalidArgumentError(`Expected a whole number from 1 to ${MAX_CONCURRENCY}.`);
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** The command a command line addresses, as far as its words name subcommands. */
function commandOf(program: Command, args: string[]): Command {
  let cmd = program;
  for (const word of args) {
    if (word.startsWith("-")) continue;
    const sub = cmd.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (!sub) break;
    cmd = sub;
  }
  return cmd;
}

function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/**
 * One line for a command-line mistake: what was wrong, and what is accepted there. Commander's
 * messages say the first half; the second comes from the command's own definition.
 */
export function usageMessage(err: CommanderError, program: Command, args: string[]): string {
  const cmd = commandOf(program, args);
  const name = fullName(cmd);
  const said = err.message.replace(/^error: /, "").split("\n")[0]!;
  const options = cmd.options.filter((o) => !o.hidden).map((o) => o.long ?? o.short);
  const subcommands = cmd.commands.map((c) => c.name());
  const help = `see ${name} --help`;
  switch (err.code) {
    case "commander.unknownOption":
      return `${said} for ${name}; it accepts ${options.join(", ")} (${help})`;
    case "commander.unknownCommand":
      return `${said} for ${name}; the commands are ${subcommands.join(", ")} (${help})`;
    case "commander.help":
      return `${name} needs a command: ${subcommands.join(", ")} (${help})`;
    case "commander.missingMandatoryOptionValue": {
      const option = cmd.options.find((o) => o.mandatory && said.includes(o.flags));
      return `${name} needs ${option ? `${option.flags}: ${option.description}` : said} (${help})`;
    }
    case "commander.missingArgument":
    case "commander.excessArguments":
    case "commander.optionMissingArgument":
      return `${said}; usage: ${name} ${cmd.usage()} (${help})`;
    default:
      return `${said} (${help})`;
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0 and their output already written
      if (err.exitCode === 0) return 0;
      const usage = new UsageError(usageMessage(err, program, argv.slice(2)));
      printError(usage, argv.includes("--json"));
      return usage.exitCode;
    }
    const shown = withCliHint(err, argv.slice(2));
    printError(shown, argv.includes("--json"));
    // An interrupted run ends now: connections kept alive for reuse must not hold the process open,
    // and parallel work that has not yet seen the abort must not leave its temporary files.
    if (shown instanceof InterruptedError) await exitAfterCleanup(shown.exitCode);
    return exitCodeOf(shown);
  }
}

/**
 * Errors from below the CLI say what is wrong in terms of the config; on the command line the
 * user also needs the flag that fixes it.
 */
function withCliHint(err: unknown, args: string[]): unknown {
  if (!(err instanceof AirgapError) || err.code !== "TLS_PLAIN_HTTP") return err;
  const hint = args.includes("import")
    ? "for the target registry pass --plain-http; for another host set plainHTTP: true on its registries: entry in --config"
    : "set plainHTTP: true on that host's registries: entry in the bundle config";
  const out = new AirgapError(`${err.message} (${hint})`, err.code, { cause: err });
  return out;
}

const code = await main(process.argv);
process.exitCode = code;
