import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InterruptedError } from "../../src/errors.js";
import { removeTempsNow, trackTemp } from "../../src/temp-files.js";

const work = mkdtempSync(join(tmpdir(), "airgap-temp-files-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("temporary files noted for an exit", () => {
  it("removes noted files and folders, and nothing that was forgotten again", () => {
    const file = join(work, "blob.partial-1");
    const dir = join(work, "bundle.partial-2");
    const done = join(work, "index.json.partial-3");
    writeFileSync(file, "x");
    mkdirSync(dir);
    writeFileSync(join(dir, "index.json"), "{}");
    writeFileSync(done, "{}");
    trackTemp(file);
    trackTemp(dir);
    trackTemp(done)();
    removeTempsNow();
    expect([existsSync(file), existsSync(dir), existsSync(done)]).toEqual([false, false, true]);
  });
});

describe("InterruptedError", () => {
  it("exits 130 for SIGINT and 143 for SIGTERM, and says how to resume", () => {
    const int = new InterruptedError("SIGINT", "rerun the same command to resume");
    const term = new InterruptedError("SIGTERM", "rerun the same command to resume");
    expect([int.exitCode, term.exitCode]).toEqual([130, 143]);
    expect(term.message).toBe("interrupted by SIGTERM; rerun the same command to resume");
    expect(term.code).toBe("INTERRUPTED");
  });
});
