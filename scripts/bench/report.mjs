#!/usr/bin/env node
// Turns the records scripts/bench.sh collected into markdown: prints the tables, and with --write
// rewrites docs/benchmarks.md (results, machine, method).
//
//   node scripts/bench/report.mjs --results results.jsonl --meta meta.json [--write docs/benchmarks.md]
//
// Records (one JSON object per line):
//   {type:"measure", id:"x<F>.<step>.<tool>", run, part, seconds, rssKb, cpuSeconds, bytes, exit, error}
//       parts of one id and run (skopeo runs image by image) add up; over runs, the median is reported
//   {type:"data", factor, bytes, images, layers}
//   {type:"note", factor, section, text}
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { results: { type: "string" }, meta: { type: "string" }, write: { type: "string" } },
});
if (!values.results || !values.meta) {
  process.stderr.write("usage: report.mjs --results FILE --meta FILE [--write FILE]\n");
  process.exit(2);
}

const RSS_LIMIT_MIB = 200;
const RATIO_TARGET = 1.5;
const INCREMENTAL_LIMIT = 0.05;
const FLAT_GROWTH = 0.2;

const meta = JSON.parse(readFileSync(values.meta, "utf8"));
const records = readFileSync(values.results, "utf8")
  .split("\n")
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l));

// id -> run -> that run's totals (skopeo runs image by image: its parts add up within a run)
const measures = new Map();
for (const r of records.filter((r) => r.type === "measure")) {
  if (!measures.has(r.id)) measures.set(r.id, new Map());
  const runs = measures.get(r.id);
  const run = r.run ?? 1;
  const t = runs.get(run) ?? { seconds: 0, cpuSeconds: 0, rssKb: 0, exit: 0, errors: [] };
  t.seconds += r.seconds;
  t.cpuSeconds += r.cpuSeconds ?? 0;
  t.rssKb = Math.max(t.rssKb, r.rssKb);
  if (r.exit) {
    t.exit ||= r.exit;
    t.errors.push(r.error);
  }
  runs.set(run, t);
}
const data = new Map(records.filter((r) => r.type === "data").map((r) => [r.factor, r]));
const notes = records.filter((r) => r.type === "note");
const factors = [...data.keys()].sort((a, b) => a - b);

const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
};
const spread = (xs) => ({ n: xs.length, median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

/** One step at one scale over all runs: median time and CPU, highest peak RSS, failure if any run failed. */
function get(f, id) {
  const runs = measures.get(`x${f}.${id}`);
  if (!runs) return undefined;
  const all = [...runs.values()];
  const failed = all.find((t) => t.exit);
  return {
    id: `x${f}.${id}`,
    runs,
    exit: failed ? failed.exit : 0,
    errors: all.flatMap((t) => t.errors),
    time: spread(all.map((t) => t.seconds)),
    cpu: median(all.map((t) => t.cpuSeconds)),
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
const fmtPct = (s) => (s ? `${(s.median * 100).toFixed(1)}%${s.n > 1 ? ` (${(s.min * 100).toFixed(0)}–${(s.max * 100).toFixed(0)}%)` : ""}` : "—");
const yes = (b) => (b === undefined ? "—" : b ? "yes" : "**no**");
const speedup = (a, p) => p.seconds / a.seconds; // peer time over airgap time, per run

function ratioRow(f, step, airgapId, peerId, bytes) {
  const a = get(f, airgapId);
  const p = get(f, peerId);
  if (!a) return undefined;
  const ratio = paired(a, p, speedup);
  return [
    step,
    fmtS(a),
    fmtS(p),
    fmtRate(a, bytes),
    fmtRate(p, bytes),
    fmtRatio(ratio),
    fmtCpu(a, p),
    fmtRss(a),
    fmtRss(p),
    `≥ ${RATIO_TARGET}x, RSS < ${RSS_LIMIT_MIB} MiB`,
    yes(ok(a) && ratio !== undefined && ratio.median >= RATIO_TARGET && mib(a.rssKb) < RSS_LIMIT_MIB),
  ];
}

const met = [];
const missed = [];

function tables() {
  const out = [];
  for (const f of factors) {
    const d = data.get(f);
    const bytes = d.bytes;
    out.push(
      `### ${(bytes / 1024 / 1024).toFixed(0)} MiB (scale ${f}: ${d.images} images x ${d.layers} layers, ${(bytes / 1e6).toFixed(0)} MB)`,
      "",
    );
    const head = [
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
    ];
    const rows = [];
    const push = (row) => row && rows.push(row);
    push(
      ratioRow(
        f,
        "create, cold cache (peer: `skopeo copy docker:// oci:`, image by image)",
        "create.airgap.cold",
        "create.skopeo",
        bytes,
      ),
    );
    const cold = get(f, "create.airgap.cold");
    const warm = get(f, "create.airgap.warm");
    if (warm) {
      const frac = paired(warm, cold, (w, c) => w.seconds / c.seconds);
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
        `< ${INCREMENTAL_LIMIT * 100}% of cold`,
        yes(frac !== undefined && frac.median < INCREMENTAL_LIMIT && mib(warm.rssKb) < RSS_LIMIT_MIB),
      ]);
    }
    push(
      ratioRow(
        f,
        "verify, integrity only (peer: `sha256sum -c SHA256SUMS`)",
        "verify.airgap",
        "verify.sha256sum",
        bytes,
      ),
    );
    push(
      ratioRow(
        f,
        "verify --key, signature + integrity (peer: `sha256sum -c SHA256SUMS`)",
        "verify.airgap.key",
        "verify.sha256sum",
        bytes,
      ),
    );
    const imp = get(f, "import.airgap");
    const impPeer = get(f, "import.skopeo");
    if (imp) {
      rows.push([
        "import into an empty registry, verify included (peer: `skopeo copy oci: docker://`)",
        fmtS(imp),
        fmtS(impPeer),
        fmtRate(imp, bytes),
        fmtRate(impPeer, bytes),
        fmtRatio(paired(imp, impPeer, speedup)),
        fmtCpu(imp, impPeer),
        fmtRss(imp),
        fmtRss(impPeer),
        `RSS < ${RSS_LIMIT_MIB} MiB (speed reported)`,
        yes(ok(imp) && mib(imp.rssKb) < RSS_LIMIT_MIB),
      ]);
    }
    const re = get(f, "reimport.airgap");
    const rePeer = get(f, "reimport.skopeo");
    if (re) {
      const frac = paired(re, imp, (r, i) => r.seconds / i.seconds);
      const peerFrac = paired(rePeer, impPeer, (r, i) => r.seconds / i.seconds);
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
        `< ${INCREMENTAL_LIMIT * 100}% of first import`,
        yes(frac !== undefined && frac.median < INCREMENTAL_LIMIT),
      ]);
    }
    for (const r of rows) {
      const verdict = { step: r[0], scale: f, result: r[5], rss: r[7], target: r[9] };
      if (r[10] === "yes") met.push(verdict);
      else if (r[10] !== "—") missed.push(verdict);
    }
    if (rows.length === 0) out.push("(no measurements at this scale)", "");
    else out.push(table(head, rows), "");
    const failed = [...measures.keys()]
      .filter((id) => id.startsWith(`x${f}.`))
      .map((id) => get(f, id.slice(id.indexOf(".") + 1)))
      .filter((m) => m.exit);
    for (const m of failed) {
      out.push(`- \`${m.id.slice(m.id.indexOf(".") + 1)}\` failed: ${oneLine(m.errors.join(" | "))}`);
    }
    for (const n of notes.filter((n) => n.factor === f)) out.push(`- ${n.section}: ${n.text}`);
    if (failed.length || notes.some((n) => n.factor === f)) out.push("");
  }
  if (factors.length >= 2) {
    const [f1, f2] = [factors[0], factors[factors.length - 1]];
    const rows = [];
    for (const [label, id, peerId] of [
      ["create, cold", "create.airgap.cold", "create.skopeo"],
      ["verify", "verify.airgap", "verify.sha256sum"],
      ["verify --key", "verify.airgap.key", "verify.sha256sum"],
      ["import", "import.airgap", "import.skopeo"],
    ]) {
      const a1 = get(f1, id);
      const a2 = get(f2, id);
      if (!ok(a1) || !ok(a2)) continue;
      const growth = a2.rssKb / a1.rssKb - 1;
      const p1 = get(f1, peerId);
      const p2 = get(f2, peerId);
      const flat = growth < FLAT_GROWTH && mib(a2.rssKb) < RSS_LIMIT_MIB;
      (flat ? met : missed).push({
        step: `${label}: peak RSS when the data doubles`,
        scale: `${f1} → ${f2}`,
        result: `${fmtRss(a1)} → ${fmtRss(a2)}`,
        rss: fmtRss(a2),
        target: `< +${FLAT_GROWTH * 100}% and < ${RSS_LIMIT_MIB} MiB`,
      });
      rows.push([
        label,
        fmtRss(a1),
        fmtRss(a2),
        `${growth >= 0 ? "+" : ""}${(growth * 100).toFixed(0)}%`,
        ok(p1) && ok(p2) ? `${fmtRss(p1)} → ${fmtRss(p2)}` : "—",
        `< +${FLAT_GROWTH * 100}% and < ${RSS_LIMIT_MIB} MiB`,
        yes(flat),
      ]);
    }
    if (rows.length) {
      out.push(
        `### Memory when the data doubles (scale ${f1} → ${f2})`,
        "",
        table(
          [
            "step",
            `airgap peak RSS, scale ${f1}`,
            `airgap peak RSS, scale ${f2}`,
            "growth",
            "peer peak RSS",
            "target (flat)",
            "met?",
          ],
          rows,
        ),
        "",
      );
    }
  }
  return out.join("\n");
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
const short = (step) => step.replace(/ \(peer:.*\)$/, "");
const verdicts = [
  `Targets met: ${met.length}; missed: ${missed.length}.`,
  ...missed.map(
    (v) => `- missed: ${short(v.step)}, scale ${v.scale}: ${v.result}, airgap RSS ${v.rss} (target ${v.target})`,
  ),
].join("\n");
process.stdout.write(`${body}\n${verdicts}\n`);

if (values.write) {
  const m = meta;
  const doc = `# Benchmarks

\`npm run bench\` (\`scripts/bench.sh\`) measures airgap side by side with the tools a site already has,
on the same bytes, in the same run, on 127.0.0.1. The figures below are the latest run, written by the
script itself. Read the **ratios**, not the absolute numbers: they depend on the machine, and on this
kind of machine the same step varies by about ±40% from run to run (skopeo and sha256sum included), so a
ratio near a target can land on either side of it.

## Latest run

- Date: ${m.date}; command: \`${m.cmd}\`; sections: ${m.sections}; ${m.runs} run(s) per step
- Machine: ${m.nproc} cores (${m.cpu}), ${m.mem} RAM, ${m.os}, Linux ${m.kernel}
- Load average (1, 5, 15 min) before -> after the run: ${m.load} (other work on the machine shows here)
- Tools: airgap ${m.airgap} (commit ${m.commit}${m.dirty ? `, ${m.dirty} uncommitted change(s) under src/` : ""}; ${m.build}), Node ${m.node},
  skopeo ${m.skopeo}, docker-registry (CNCF distribution) ${m.registry}, coreutils ${m.coreutils}
- Data: ${m.images} images x ${m.layers} layers of random (incompressible) bytes, uncompressed OCI layers,
  ${m.mb} MiB at scale 1${factors.length > 1 ? `, and again at scale ${factors[factors.length - 1]} to check that memory stays flat` : ""}

${verdicts}

${body}
## How it is measured

- Registries: CNCF distribution (\`docker-registry serve\`) over plain HTTP on 127.0.0.1, started by the
  script with fresh storage: one source registry per scale, and for each import run two new empty
  registries (one for skopeo, one for airgap), so "empty registry" is true for both.
- Data: \`scripts/bench/gen-images.mjs\` writes an OCI layout of uncompressed tar layers filled from a
  seeded AES-CTR keystream (incompressible, the same digests on every run), which skopeo pushes to the
  source registry. Sizes are uneven within an image (a large base layer and smaller ones).
- create: \`skopeo copy --all --preserve-digests docker://SRC/bench/imgN:v1 oci:DIR:REF\`, image by image
  (times added up), against \`airgap bundle create -c CONFIG -o DIR --cache EMPTY_DIR\` for all images in
  one command (cold). Then the same create with the now-warm cache into a new output folder (warm).
- verify: \`sha256sum -c --quiet SHA256SUMS\` in the bundle folder (coreutils, one core) against
  \`airgap bundle verify DIR\` (integrity only) and \`airgap bundle verify DIR --key cosign.pub\` on a bundle
  signed with a key from \`airgap key generate\`. The page cache cannot be dropped here, so each command
  runs once unmeasured (warm-up) and then once measured: both read from memory.
- import: \`skopeo copy --all --preserve-digests oci:BUNDLE:REF docker://DST/bench-import/bench/imgN:v1\`
  image by image, against \`airgap bundle import BUNDLE --registry DST2/bench-import --config import.yaml\`
  (\`plainHTTP: true\` for that host). airgap verifies the whole bundle before it pushes, and that time is
  included; skopeo does no such pass. Then both run again into their now-populated registries
  (re-import). Afterwards the script checks that both registries serve every manifest with its source digest.
- Wall time, peak RSS and CPU time (user + system) come from \`/usr/bin/time -f '%e %M %U %S'\` around
  each command (for skopeo, times added up over its per-image runs and the largest RSS). CPU time is
  the client's only: the registries on the same ${m.nproc} cores use CPU too. MB/s = image bytes
  (10^6) / wall seconds. Ratio = peer seconds / airgap seconds of the same run (above 1 means airgap is
  faster). Each step runs ${m.runs} time(s) per scale; the tables give the median and, in brackets, the
  range over runs; peak RSS is the highest of the runs. Odd runs start with the peer, even runs with
  airgap, so neither always gets the warmer server.
- Everything runs from the page cache (the machine has far more RAM than the data), so disk speed is
  not what is measured; network is loopback. \`sync\` runs before each measured command, so dirty pages
  one command left behind are not written back on the next one's time.
`;
  mkdirSync(dirname(values.write), { recursive: true });
  writeFileSync(values.write, doc);
}
