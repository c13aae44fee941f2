import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { type PasswordInput, readPassword } from "../../src/bundle/password.js";
import { UsageError } from "../../src/errors.js";

/** A stand-in terminal: records raw-mode switches and replays typed chunks once reading starts. */
class FakeTty extends EventEmitter implements PasswordInput {
  isTTY = true;
  rawModes: boolean[] = [];
  private pending: string[][];
  constructor(...answers: string[][]) {
    super();
    this.pending = answers;
  }
  setRawMode(mode: boolean) {
    this.rawModes.push(mode);
  }
  resume() {
    const chunks = this.pending.shift() ?? [];
    setImmediate(() => {
      for (const c of chunks) this.emit("data", Buffer.from(c, "utf8"));
    });
  }
  pause() {}
}

function sink() {
  const out = { text: "", write: (s: string) => (out.text += s) };
  return out;
}

describe("readPassword", () => {
  it("takes COSIGN_PASSWORD from the environment, including an empty one", async () => {
    expect(await readPassword({ purpose: "cosign.key", env: { COSIGN_PASSWORD: "s3cret" } })).toBe("s3cret");
    expect(await readPassword({ purpose: "cosign.key", env: { COSIGN_PASSWORD: "" }, confirm: true })).toBe(
      "",
    );
  });

  it("without COSIGN_PASSWORD and without a terminal, tells the user to set COSIGN_PASSWORD", async () => {
    const notTty = new FakeTty();
    notTty.isTTY = false;
    const err = await readPassword({ purpose: "cosign.key", env: {}, input: notTty, output: sink() }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toContain("set COSIGN_PASSWORD");
    expect(err.message).toContain("cosign.key");
    expect(err.exitCode).toBe(2);
  });

  it("prompts on the terminal without echo, handling pasted chunks and backspace", async () => {
    const tty = new FakeTty(["pass", "wordX\u007f", "!\r"]);
    const out = sink();
    const pw = await readPassword({ purpose: "cosign.key", env: {}, input: tty, output: out });
    expect(pw).toBe("password!");
    // Exactly the prompt and a newline: nothing typed is echoed.
    expect(out.text).toBe("Enter password for cosign.key: \n");
    expect(tty.rawModes).toEqual([true, false]);
  });

  it("with confirm, asks twice and fails clearly when the answers differ", async () => {
    const same = new FakeTty(["abc\r"], ["abc\n"]);
    const out = sink();
    expect(
      await readPassword({ purpose: "cosign.key", confirm: true, env: {}, input: same, output: out }),
    ).toBe("abc");
    expect(out.text).toContain("Enter password for cosign.key again: ");

    const differ = new FakeTty(["abc\r"], ["abd\r"]);
    const err = await readPassword({
      purpose: "cosign.key",
      confirm: true,
      env: {},
      input: differ,
      output: sink(),
    }).catch((e) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toBe("passwords for cosign.key do not match");
  });

  it("Ctrl-C aborts with a usage error and restores the terminal", async () => {
    const tty = new FakeTty(["ab\u0003"]);
    const err = await readPassword({ purpose: "cosign.key", env: {}, input: tty, output: sink() }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toBe("password entry interrupted");
    expect(tty.rawModes).toEqual([true, false]);
  });
});
