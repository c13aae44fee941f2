import { describe, expect, it } from "vitest";
import { human, ProgressMeter, StreamProgress } from "../../src/pipeline/progress.js";

const MiB = 1024 * 1024;

/** A clock the test moves by hand. */
function clock(start = 1_000_000) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

function sink() {
  const lines: string[] = [];
  return {
    out: { isTTY: false, write: (s: string) => lines.push(...s.split("\n").filter(Boolean)) > 0 },
    lines,
  };
}

describe("ProgressMeter", () => {
  it("adds up chunk sizes, not calls", () => {
    const c = clock();
    const m = new ProgressMeter(c.now, 60 * MiB);
    for (let i = 0; i < 60; i++) {
      c.advance(20);
      m.add(MiB);
    }
    expect(m.moved).toBe(60 * MiB);
    expect(m.expected).toBe(60 * MiB);
    expect(m.summary("pulling")).toBe("pulling: 60.0 MiB in 1.2s (50.0 MiB/s)");
  });

  it("gives no rate or ETA before a second has passed", () => {
    const c = clock();
    const m = new ProgressMeter(c.now, 60 * MiB);
    c.advance(50);
    m.add(3 * 1024);
    expect(m.recentRate()).toBeUndefined();
    expect(m.running("pulling")).toBe("pulling: 3.0 KiB / 60.0 MiB");
  });

  it("takes the rate from the last seconds, so a stall shows and the ETA follows", () => {
    const c = clock();
    const m = new ProgressMeter(c.now, 100 * MiB);
    // 10 MiB/s for 4 s...
    for (let i = 0; i < 40; i++) {
      c.advance(100);
      m.add(MiB);
    }
    expect(m.recentRate()).toBeCloseTo(10 * MiB, -3);
    expect(m.running("pushing")).toBe("pushing: 40.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 6s");
    // ...then 1 MiB/s for 10 s: the whole-phase average would still say ~3.6 MiB/s.
    for (let i = 0; i < 10; i++) {
      c.advance(1000);
      m.add(MiB);
    }
    expect(m.recentRate()).toBeCloseTo(MiB, -3);
    expect(m.running("pushing")).toBe("pushing: 50.0 MiB / 100.0 MiB  1.0 MiB/s  ETA 50s");
  });

  it("takes skipped bytes off what is left to move, and never shows a total below what moved", () => {
    const c = clock();
    const m = new ProgressMeter(c.now, 10 * MiB);
    m.skip(4 * MiB);
    m.add(6 * MiB);
    c.advance(2000);
    expect(m.expected).toBe(6 * MiB);
    m.add(MiB); // more than planned (an extra found on the way)
    expect(m.expected).toBe(7 * MiB);
    m.items = 2;
    expect(m.summary("pushing")).toBe("pushing: 7.0 MiB in 2.0s (3.5 MiB/s), 2 items, 4.0 MiB already there");
  });

  it("says how much was left when a phase ends early", () => {
    const c = clock();
    const m = new ProgressMeter(c.now, 10 * MiB);
    m.add(MiB);
    c.advance(500);
    expect(m.summary("pulling")).toBe("pulling: 1.0 MiB of 10.0 MiB in 0.5s (2.0 MiB/s)");
  });
});

describe("StreamProgress (plain lines)", () => {
  it("prints no running line before 5 s, then one every 5 s, and each phase's real totals at its end", () => {
    const c = clock();
    const { out, lines } = sink();
    const p = new StreamProgress(out, { plain: true, now: c.now });
    const sizes = [5 * MiB, 17 * MiB, 30 * 1024, 38 * MiB - 30 * 1024];
    p.phase("pulling", 60 * MiB);
    for (const size of sizes) {
      // in 64 KiB chunks, 1 ms apart
      for (let left = size; left > 0; left -= 64 * 1024) {
        c.advance(1);
        p.bytes("img", Math.min(64 * 1024, left));
      }
    }
    p.itemDone("img");
    expect(lines).toEqual(["pulling 60.0 MiB…", "  done img"]);

    p.phase("writing", 0);
    p.expect(2 * MiB);
    c.advance(6000);
    p.bytes("write", MiB);
    c.advance(1000);
    p.bytes("write", MiB);
    p.finish();
    expect(lines.slice(2)).toEqual([
      "  pulling: 60.0 MiB in 1.0s (62.4 MiB/s), 1 item",
      "writing…",
      "  writing: 1.0 MiB / 2.0 MiB  170.7 KiB/s  ETA 6s",
      "  writing: 2.0 MiB in 7.0s (292.6 KiB/s)",
    ]);
  });

  it("counts items per phase", () => {
    const c = clock();
    const { out, lines } = sink();
    const p = new StreamProgress(out, { plain: true, now: c.now });
    p.phase("pulling", 0);
    p.itemDone("a");
    p.itemDone("b");
    p.phase("writing", 100);
    c.advance(10);
    p.bytes("write", 100);
    p.finish();
    expect(lines).toContain("  pulling: 0 B in 0.0s, 2 items");
    expect(lines[lines.length - 1]).toBe("  writing: 100 B in 0.0s");
    expect(human(100)).toBe("100 B");
  });
});
