#!/usr/bin/env node
// Builds dist/airgap.mjs: the whole CLI in one ESM file with every dependency inlined, so it runs on
// Node >= 20 with no node_modules (it crosses the gap inside each bundle as tools/airgap-VERSION.mjs,
// and is the one layer of the runner image). The version and the Kubernetes manifests are embedded,
// since package.json and manifests/ do not travel with it.
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

function readTree(dir) {
  const files = {};
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else files[relative(dir, full).split(sep).join("/")] = readFileSync(full, "utf8");
    }
  };
  walk(dir);
  return files;
}

// Dependencies written as CommonJS (the AWS SDK, among others) call require() for Node built-ins;
// an ESM file has no require, so give it one. (The shebang of src/cli/main.ts stays first.)
const requireBanner = [
  'import { createRequire as __airgapCreateRequire } from "node:module";',
  "const require = __airgapCreateRequire(import.meta.url);",
].join("\n");
const common = {
  entryPoints: [join(root, "src", "cli", "main.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  banner: { js: requireBanner },
  legalComments: "eof",
  logLevel: "warning",
  metafile: true,
};
const embedded = {
  __AIRGAP_VERSION__: JSON.stringify(pkg.version),
  __AIRGAP_MANIFESTS__: JSON.stringify(readTree(join(root, "manifests"))),
};

const outfile = join(root, "dist", "airgap.mjs");
const result = await build({
  ...common,
  outfile,
  define: { ...embedded, __AIRGAP_SINGLE_FILE__: "true" },
});
const bytes = statSync(outfile).size;
const inputs = Object.keys(result.metafile.inputs).length;
console.log(`${relative(process.cwd(), outfile)}: ${bytes} bytes from ${inputs} modules (airgap ${pkg.version})`);

// dist/bin/airgap.mjs, the `airgap` command of the package: the same inlined code, split into chunks
// that load when a command needs them (the AWS SDK only for s3://, listr2 only on a terminal), so
// a command starts in a fraction of the time that resolving and compiling hundreds of separate
// modules from node_modules takes. The single file above stays what bundles carry.
const binDir = join(root, "dist", "bin");
rmSync(binDir, { recursive: true, force: true });
const split = await build({
  ...common,
  outdir: binDir,
  entryNames: "airgap",
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  splitting: true,
  define: { ...embedded, __AIRGAP_SINGLE_FILE__: "false" },
});
const outputs = Object.keys(split.metafile.outputs).filter((f) => f.endsWith(".mjs")).length;
console.log(`${relative(process.cwd(), join(binDir, "airgap.mjs"))}: the command, ${outputs} files loaded on demand`);
