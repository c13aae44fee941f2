#!/usr/bin/env node
// Turns the records scripts/bench.sh collected into markdown: prints the tables, and with --write
// rewrites docs/benchmarks.md (results, machine, method).
//
//   node scripts/bench/report.mjs --results results.jsonl [--results more.jsonl] --meta meta.json [--write docs/benchmarks.md]
//
// Records (one JSON object per line):
//   {type:"measure", id:"x<CASE>.<step>.<tool>", run, part, seconds, rssKb, cpuSeconds, bytes, exit, error}
//       parts of one id and run (skopeo runs image by image) add up; over runs, the median is reported
//   {type:"data", case, transport, bytes, images, layers, blobs, mib, even}
//   {type:"load", case, run, load}
//   {type:"note", case, section, text}
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    results: { type: "string", multiple: true },
    meta: { type: "string" },
    write: { type: "string" },
  },
});
if (!values.results || !values.meta) {
  process.stderr.write("usage: report.mjs --results FILE --meta FILE [--write FILE]\n");
  process.exit(2);
}

const RSS_LIMIT_MIB = 200;
const CREATE_TARGET = 1.5;
const IMPORT_TARGET = 1.5;
const VERIFY_TARGET = 3;
const WARM_LIMIT = 0.05;
const REIMPORT_LIMIT = 0.1;
const FLAT_GROWTH = 0.2;

const meta = JSON.parse(readFileSync(values.meta, "utf8"));
// Several result files (runs of different cases at different times) may be combined.
const records = values.results.flatMap((file) =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l)),
);

// id -> run -> that run's totals (skopeo runs image by image: its parts add up within a run)
const measures = new Map();
for (const r of records.filter((r) => r.type === "measure")) {
  if (!measures.has(r.id)) measures.set(r.id, new Map());
  const runs = measures.get(r.id);
  const run = r.run ?? 1;
  const t = runs.get(run) ?? {
    seconds: 0,
    cpuSeconds: 0,
    registryCpuSeconds: undefined,
    machineCpuSeconds: undefined,
    rssKb: 0,
    exit: 0,
    errors: [],
  };
  t.seconds += r.seconds;
  t.cpuSeconds += r.cpuSeconds ?? 0;
  // recorded since the benchmark measured them (older result files lack them)
  if (r.registryCpuSeconds !== undefined) t.registryCpuSeconds = (t.registryCpuSeconds ?? 0) + r.registryCpuSeconds;
  if (r.machineCpuSeconds !== undefined) t.machineCpuSeconds = (t.machineCpuSeconds ?? 0) + r.machineCpuSeconds;
  t.rssKb = Math.max(t.rssKb, r.rssKb);
  if (r.exit) {
    t.exit ||= r.exit;
    t.errors.push(r.error);
  }
  runs.set(run, t);
}
const data = new Map(records.filter((r) => r.type === "data").map((r) => [r.case, r]));
const loads = records.filter((r) => r.type === "load");
const notes = records.filter((r) => r.type === "note");
const cases = [...data.keys()];

const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
};
const spread = (xs) => ({ n: xs.length, median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

/** One step of one case over all runs: median time and CPU, highest peak RSS, failure if any run failed. */
function get(c, id) {
  const runs = measures.get(`x${c}.${id}`);
  if (!runs) return undefined;
  const all = [...runs.values()];
  const failed = all.find((t) => t.exit);
  return {
    id: `x${c}.${id}`,
    runs,
    exit: failed ? failed.exit : 0,
    errors: all.flatMap((t) => t.errors),
    time: spread(all.map((t) => t.seconds)),
    cpu: median(all.map((t) => t.cpuSeconds)),
    registryCpu: all.every((t) => t.registryCpuSeconds !== undefined)
      ? median(all.map((t) => t.registryCpuSeconds))
      : undefined,
    machineBusy: all.every((t) => t.machineCpuSeconds !== undefined)
      ? median(all.map((t) => t.machineCpuSeconds / (t.seconds * (meta.nproc || 1))))
      : undefined,
    rssKb: Math.max(...all.map((t) => t.rssKb)),
  };
}
const ok = (m) => m && !m.exit;
/** fn(a_run, b_run) over the runs both steps completed; undefined when there are none. */
function paired(a, b, fn) {
  if (!ok(a) || !ok(b)) return undefined;
  const xs = [...a.runs.keys()].filter((r) => b.runs.has(r)).map((r) => fn(a.runs.get(r), b.runs.get(r)));
  return xs.length ? spread(xs) : undefined;
}
const range = (s, digits, unit = "") =>
  s.n > 1 ? ` (${s.min.toFixed(digits)}–${s.max.toFixed(digits)}${unit})` : "";
const mib = (kb) => kb / 1024;
const fmtS = (m) => (!m ? "—" : m.exit ? `FAILED (exit ${m.exit})` : `${m.time.median.toFixed(2)}${range(m.time, 2)}`);
const fmtRate = (m, bytes) => (ok(m) && m.time.median > 0 ? (bytes / 1e6 / m.time.median).toFixed(0) : "—");
const fmtCpu = (a, p) => `${ok(a) ? a.cpu.toFixed(1) : "—"} / ${ok(p) ? p.cpu.toFixed(1) : "—"}`;
const fmtRss = (m) => (ok(m) ? `${mib(m.rssKb).toFixed(0)} MiB` : "—");
const fmtRatio = (s) => (s ? `${s.median.toFixed(2)}x${range(s, 2, "x")}` : "—");
const fmtPct = (s) =>
  s ? `${(s.median * 100).toFixed(1)}%${s.n > 1 ? ` (${(s.min * 100).toFixed(0)}–${(s.max * 100).toFixed(0)}%)` : ""}` : "—";
const yes = (b) => (b === undefined ? "—" : b ? "yes" : "**no**");
const speedup = (a, p) => p.seconds / a.seconds; // peer time over airgap time, per run
const rssOk = (m) => ok(m) && mib(m.rssKb) < RSS_LIMIT_MIB;

function describe(c) {
  const d = data.get(c);
  const size = d.bytes >= 1024 ** 3 ? `${(d.bytes / 1024 ** 3).toFixed(1)} GiB` : `${(d.bytes / 1024 ** 2).toFixed(0)} MiB`;
  const how = d.transport === "tls" ? "TLS (private CA) + htpasswd" : "plain HTTP, no auth";
  return `${size}, ${d.images} images x ${d.layers} layers${d.even ? " of equal size" : ""} = ${d.blobs} blobs, ${how}`;
}
const loadsOf = (c) =>
  loads
    .filter((l) => l.case === c)
    .map((l) => `run ${l.run}: ${l.load}`)
    .join("; ");

const met = [];
const missed = [];
const verdict = (row, c, target, good) => {
  if (good === undefined) return "—";
  (good ? met : missed).push({ step: row, scale: c, target });
  return yes(good);
};

function caseTable(c) {
  const d = data.get(c);
  const bytes = d.bytes;
  // Speed targets hold for the large cases; the many-blob cases report ratios and check flatness.
  const speedTargets = !d.even;
  const rows = [];
  const ratioRow = (step, airgapId, peerId, target) => {
    const a = get(c, airgapId);
    const p = get(c, peerId);
    if (!a) return;
    const ratio = paired(a, p, speedup);
    const targetText = speedTargets
      ? `≥ ${target}x, RSS < ${RSS_LIMIT_MIB} MiB`
      : `RSS < ${RSS_LIMIT_MIB} MiB (ratio reported)`;
    const good = speedTargets
      ? ok(a) && ratio !== undefined && ratio.median >= target && rssOk(a)
      : rssOk(a);
    rows.push([
      step,
      fmtS(a),
      fmtS(p),
      fmtRate(a, bytes),
      fmtRate(p, bytes),
      fmtRatio(ratio),
      fmtCpu(a, p),
      fmtRss(a),
      fmtRss(p),
      targetText,
      verdict(`${step.replace(/ \(peer:.*\)$/, "")}: ${fmtRatio(ratio)}, RSS ${fmtRss(a)}`, c, targetText, good),
    ]);
  };
  ratioRow(
    "create, cold cache (peer: `skopeo copy docker:// oci:`, image by image)",
    "create.airgap.cold",
    "create.skopeo",
    CREATE_TARGET,
  );
  // Reference rows: what the same bytes cost without airgap, for reading the create row against.
  const referenceRow = (step, id, target, withRss) => {
    const m = get(c, id);
    if (!m) return;
    rows.push([step, fmtS(m), "—", fmtRate(m, bytes), "—", "—", fmtCpu(m, undefined), withRss ? fmtRss(m) : "—", "—", target, "—"]);
  };
  referenceRow(
    "the source registry's own limit: every blob with `curl`, 8 in parallel, bodies discarded",
    "create.curl",
    "reported (a ceiling for create)",
    false,
  );
  referenceRow(
    "a bare Node.js pull of the same blobs: `undici` GET, SHA-256 and a file write each, 4 in parallel (no airgap code)",
    "create.nodefloor",
    "reported (one Node.js thread's floor for create)",
    true,
  );
  const cold = get(c, "create.airgap.cold");
  const warm = get(c, "create.airgap.warm");
  if (warm) {
    const frac = paired(warm, cold, (w, k) => w.seconds / k.seconds);
    const target = `< ${WARM_LIMIT * 100}% of cold`;
    rows.push([
      "create, warm cache, new output folder",
      fmtS(warm),
      "—",
      "—",
      "—",
      `${fmtPct(frac)} of cold`,
      fmtCpu(warm, undefined),
      fmtRss(warm),
      "—",
      target,
      verdict(`create, warm: ${fmtPct(frac)} of cold`, c, target, frac && frac.median < WARM_LIMIT && rssOk(warm)),
    ]);
  }
  ratioRow("verify, integrity only (peer: `sha256sum -c SHA256SUMS`)", "verify.airgap", "verify.sha256sum", VERIFY_TARGET);
  ratioRow(
    "verify --key, signature + integrity (peer: `sha256sum -c SHA256SUMS`)",
    "verify.airgap.key",
    "verify.sha256sum",
    VERIFY_TARGET,
  );
  ratioRow(
    "import into an empty registry, each blob verified as it uploads (peer: `skopeo copy oci: docker://`)",
    "import.airgap",
    "import.skopeo",
    IMPORT_TARGET,
  );
  const imp = get(c, "import.airgap");
  const impPeer = get(c, "import.skopeo");
  const re = get(c, "reimport.airgap");
  const rePeer = get(c, "reimport.skopeo");
  if (re) {
    const frac = paired(re, imp, (r, i) => r.seconds / i.seconds);
    const peerFrac = paired(rePeer, impPeer, (r, i) => r.seconds / i.seconds);
    const target = `< ${REIMPORT_LIMIT * 100}% of first import`;
    rows.push([
      "re-import, everything already there",
      fmtS(re),
      fmtS(rePeer),
      "—",
      "—",
      `${fmtPct(frac)} of first (peer ${fmtPct(peerFrac)})`,
      fmtCpu(re, rePeer),
      fmtRss(re),
      fmtRss(rePeer),
      target,
      verdict(`re-import: ${fmtPct(frac)} of first`, c, target, frac && frac.median < REIMPORT_LIMIT && rssOk(re)),
    ]);
  }
  const out = [`### ${c}: ${describe(c)}`, "", `Load average (1, 5, 15 min) at the start of each run: ${loadsOf(c) || "—"}`, ""];
  if (rows.length === 0) out.push("(no measurements in this case)", "");
  else
    out.push(
      table(
        [
          "step",
          "airgap s",
          "peer s",
          "airgap MB/s",
          "peer MB/s",
          "ratio (speed-up)",
          "CPU s airgap / peer",
          "airgap peak RSS",
          "peer peak RSS",
          "target",
          "met?",
        ],
        rows,
      ),
      "",
    );
  out.push(...cpuTable(c));
  const failed = [...measures.keys()]
    .filter((id) => id.startsWith(`x${c}.`))
    .map((id) => get(c, id.slice(`x${c}.`.length)))
    .filter((m) => m.exit);
  for (const m of failed) out.push(`- \`${m.id.slice(`x${c}.`.length)}\` failed: ${oneLine(m.errors.join(" | "))}`);
  for (const n of notes.filter((n) => n.case === c)) out.push(`- ${n.section}: ${n.text}`);
  if (failed.length || notes.some((n) => n.case === c)) out.push("");
  return out.join("\n");
}

/**
 * Where the CPU went in each step (medians): the tool's own, the registries' (they share the
 * machine), and how busy the whole machine was. A machine near 100% busy is the limit, whoever runs.
 */
function cpuTable(c) {
  const rows = [];
  for (const [label, id] of [
    ["create, cold: airgap", "create.airgap.cold"],
    ["create: skopeo", "create.skopeo"],
    ["create: curl, 8 in parallel, bodies discarded", "create.curl"],
    ["create: bare Node.js pull (undici, SHA-256, file)", "create.nodefloor"],
    ["import: airgap", "import.airgap"],
    ["import: skopeo", "import.skopeo"],
    ["re-import: airgap", "reimport.airgap"],
  ]) {
    const m = get(c, id);
    if (!ok(m) || m.registryCpu === undefined) continue;
    rows.push([
      label,
      m.time.median.toFixed(2),
      m.cpu.toFixed(2),
      m.registryCpu.toFixed(2),
      m.machineBusy === undefined ? "—" : `${(m.machineBusy * 100).toFixed(0)}%`,
    ]);
  }
  if (!rows.length) return [];
  return [
    `Where the CPU went (medians; ${meta.nproc} cores shared by the tool and the registries):`,
    "",
    table(["step", "wall s", "tool CPU s", "registries' CPU s", "whole machine busy"], rows),
    "",
  ];
}

const STEPS = [
  ["create, cold", "create.airgap.cold", "create.skopeo"],
  ["verify", "verify.airgap", "verify.sha256sum"],
  ["verify --key", "verify.airgap.key", "verify.sha256sum"],
  ["import", "import.airgap", "import.skopeo"],
  ["re-import", "reimport.airgap", "reimport.skopeo"],
];

/** Time per blob in a small-blob case and a case with ten times the blobs: it must stay flat. */
function perBlobTable() {
  const even = cases.filter((c) => data.get(c).even).sort((a, b) => data.get(a).blobs - data.get(b).blobs);
  if (even.length < 2) return "";
  const [c1, c2] = [even[0], even[even.length - 1]];
  const [n1, n2] = [data.get(c1).blobs, data.get(c2).blobs];
  const ms = (m, n) => (ok(m) ? (m.time.median / n) * 1000 : undefined);
  const rows = [];
  for (const [label, id, peerId] of STEPS) {
    const a1 = ms(get(c1, id), n1);
    const a2 = ms(get(c2, id), n2);
    if (a1 === undefined || a2 === undefined) continue;
    const p1 = ms(get(c1, peerId), n1);
    const p2 = ms(get(c2, peerId), n2);
    const growth = a2 / a1 - 1;
    const target = `< +${FLAT_GROWTH * 100}%`;
    rows.push([
      label,
      a1.toFixed(2),
      a2.toFixed(2),
      `${growth >= 0 ? "+" : ""}${(growth * 100).toFixed(0)}%`,
      p1 !== undefined && p2 !== undefined ? `${p1.toFixed(2)} → ${p2.toFixed(2)}` : "—",
      target,
      verdict(`${label}: time per blob ${a1.toFixed(2)} → ${a2.toFixed(2)} ms`, `${c1} → ${c2}`, target, growth < FLAT_GROWTH),
    ]);
  }
  if (!rows.length) return "";
  return [
    `### Time per blob: ${n1} blobs (${c1}) → ${n2} blobs (${c2})`,
    "",
    "Whole-command wall time divided by the number of blobs (so a fixed start-up cost weighs more in the small case).",
    "",
    table(
      ["step", `airgap ms/blob, ${n1}`, `airgap ms/blob, ${n2}`, "growth", "peer ms/blob", "target (flat)", "met?"],
      rows,
    ),
    "",
  ].join("\n");
}

/** Peak RSS in the smallest and the largest of the large-data cases of one transport: it must stay flat. */
function memoryTable() {
  const big = cases
    .filter((c) => !data.get(c).even && data.get(c).transport === "tls")
    .sort((a, b) => data.get(a).bytes - data.get(b).bytes);
  if (big.length < 2) return "";
  const [c1, c2] = [big[0], big[big.length - 1]];
  const rows = [];
  for (const [label, id, peerId] of STEPS.slice(0, 4)) {
    const a1 = get(c1, id);
    const a2 = get(c2, id);
    if (!ok(a1) || !ok(a2)) continue;
    const growth = a2.rssKb / a1.rssKb - 1;
    const p1 = get(c1, peerId);
    const p2 = get(c2, peerId);
    const target = `< +${FLAT_GROWTH * 100}% and < ${RSS_LIMIT_MIB} MiB`;
    rows.push([
      label,
      fmtRss(a1),
      fmtRss(a2),
      `${growth >= 0 ? "+" : ""}${(growth * 100).toFixed(0)}%`,
      ok(p1) && ok(p2) ? `${fmtRss(p1)} → ${fmtRss(p2)}` : "—",
      target,
      verdict(
        `${label}: peak RSS ${fmtRss(a1)} → ${fmtRss(a2)}`,
        `${c1} → ${c2}`,
        target,
        growth < FLAT_GROWTH && mib(a2.rssKb) < RSS_LIMIT_MIB,
      ),
    ]);
  }
  if (!rows.length) return "";
  return [
    `### Memory as the data grows (${c1} → ${c2})`,
    "",
    table(
      ["step", `airgap peak RSS, ${c1}`, `airgap peak RSS, ${c2}`, "growth", "peer peak RSS", "target (flat)", "met?"],
      rows,
    ),
    "",
  ].join("\n");
}

function tables() {
  return [...cases.map(caseTable), perBlobTable(), memoryTable()].filter(Boolean).join("\n");
}

function table(head, rows) {
  const esc = (c) => String(c).replaceAll("|", "\\|");
  return [
    `| ${head.map(esc).join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
  ].join("\n");
}

function oneLine(s) {
  return s.replace(/\s+/g, " ").trim().slice(0, 400);
}

const body = tables();
const verdicts = [
  `Targets met: ${met.length}; missed: ${missed.length}.`,
  ...missed.map((v) => `- missed (${v.scale}): ${v.step} (target ${v.target})`),
].join("\n");
process.stdout.write(`${body}\n${verdicts}\n`);

if (values.write) {
  const m = meta;
  const analysisFile = new URL("./analysis.md", import.meta.url);
  const analysis = existsSync(analysisFile) ? readFileSync(analysisFile, "utf8").trim() : "";
  const doc = `# Benchmarks

\`npm run bench\` (\`scripts/bench.sh\`) measures airgap side by side with the tools a site already has,
on the same bytes, in the same run, on 127.0.0.1, over TLS with a private CA and registry
authentication (the path users have), and again over plain HTTP for comparison. The figures below are
the latest run, written by the script itself. Read the **ratios**, not the absolute numbers: they
depend on the machine and on what else runs on it (the load average of every run is recorded with
its table), and on a shared machine the same step varies a lot from run to run (skopeo and sha256sum
included), so a ratio near a target can land on either side of it.

## Latest run

- Date: ${m.date}; command: \`${m.cmd}\`; sections: ${m.sections}
- Machine: ${m.nproc} cores (${m.cpu}), ${m.mem} RAM, ${m.os}, Linux ${m.kernel}
- Load average (1, 5, 15 min) before -> after the run: ${m.load} (other work on the machine shows here)
- Tools: airgap ${m.airgap} (commit ${m.commit}${m.dirty ? `, ${m.dirty} uncommitted change(s) under src/` : ""}; ${m.build}), Node ${m.node},
  skopeo ${m.skopeo}, docker-registry (CNCF distribution) ${m.registry}, coreutils ${m.coreutils}
- Cases: ${cases.map((c) => `\`${c}\` (${describe(c)})`).join("; ")}

${verdicts}

${body}
${analysis ? `## Where the time goes\n\n${analysis}\n\n` : ""}## How it is measured

- Registries: CNCF distribution (\`docker-registry serve\`) on 127.0.0.1, started by the script with
  fresh storage: one source registry per case, and for each import run two new empty registries (one
  for skopeo, one for airgap), so "empty registry" is true for both. In the \`tls-*\` cases every
  registry serves TLS with a certificate from a private CA made for the run and requires htpasswd
  (bcrypt) Basic authentication; airgap gets the CA with \`--ca-file\` (the machine's global CA
  variables are removed from its environment) and the credentials from \`REGISTRY_AUTH_FILE\`; skopeo
  gets \`--src-cert-dir\` / \`--dest-cert-dir\` and \`--authfile\`. The \`plain-*\` case uses plain HTTP
  without authentication.
- Data: \`scripts/bench/gen-images.mjs\` writes an OCI layout of uncompressed tar layers filled from a
  seeded AES-CTR keystream (incompressible, the same digests on every run). \`scripts/bench/seed-registry.mjs\`
  hard-links it into the source registry's storage folder in the layout that registry reads (pushing
  5,000 blobs through the API took minutes on a loaded machine), and every manifest is then read back
  through the API and compared with its digest before anything is measured. In the large cases sizes
  are uneven within an image (a large base layer and smaller ones); in the many-blob cases every layer
  has the same small size.
- create: \`skopeo copy --all --preserve-digests docker://SRC/bench/imgN:v1 oci:DIR:REF\`, image by image
  (times added up), against \`airgap bundle create -c CONFIG -o DIR --cache EMPTY_DIR\` for all images in
  one command (cold). Then the same create with the now-warm cache into a new output folder (warm).
- verify: \`sha256sum -c --quiet SHA256SUMS\` in the bundle folder (coreutils, one core) against
  \`airgap bundle verify DIR\` (integrity only) and \`airgap bundle verify DIR --key cosign.pub\` on a bundle
  signed with a key from \`airgap key generate\`. The page cache cannot be dropped here, so each command
  runs once unmeasured (warm-up) and then once measured: both read from memory.
- import: \`skopeo copy --all --preserve-digests oci:BUNDLE:REF docker://DST/bench-import/bench/imgN:v1\`
  image by image, against \`airgap bundle import BUNDLE --registry DST2/bench-import\`. airgap checks the
  signature and SHA256SUMS first and then verifies each blob against its digest while it uploads (one
  pass; root manifests and tags go last); skopeo verifies nothing against a checksum list. Then both
  run again into their now-populated registries (re-import: airgap reads no blob the target holds).
  Afterwards the script checks that both registries serve every manifest with its source digest.
- Wall time, peak RSS and CPU time (user + system) come from \`/usr/bin/time -f '%e %M %U %S'\` around
  each command (for skopeo, times added up over its per-image runs and the largest RSS). CPU time is
  the client's only: the registries on the same ${m.nproc} cores use CPU too. MB/s = image bytes
  (10^6) / wall seconds. Ratio = peer seconds / airgap seconds of the same run (above 1 means airgap is
  faster). The tables give the median over a case's runs and, in brackets, the range; peak RSS is the
  highest of the runs. Odd runs start with the peer, even runs with airgap, so neither always gets the
  warmer server.
- On a shared machine the CPU time column matters as much as the wall time: when the load average is
  far above the number of cores, the kernel shares CPU per thread, so a tool with many threads (skopeo,
  the Go registry) gets a larger share than one with a single main thread (Node), and wall-time ratios
  move against airgap while CPU seconds stay comparable.
- Everything runs from the page cache (the machine has far more RAM than the data), so disk speed is
  not what is measured; network is loopback. \`sync\` runs before each measured command, so dirty pages
  one command left behind are not written back on the next one's time.
`;
  mkdirSync(dirname(values.write), { recursive: true });
  writeFileSync(values.write, doc);
}
