import { describe, expect, it } from "vitest";
import { forTerminal } from "../../src/cli/terminal.js";
import { redactDeep, redactSecrets } from "../../src/redact.js";

describe("redactSecrets", () => {
  it.each([
    ["https://user:tok3n@git.example/org/repo.git", "https://git.example/org/repo.git"],
    ["git+https://ghp_abc@github.com/x.git@main", "git+https://github.com/x.git@main"],
    ["https://u:p@ss@host:8443/a", "https://host:8443/a"],
    ["fetch http://a:b@h/x failed; retry http://c:d@h/y", "fetch http://h/x failed; retry http://h/y"],
    ["https://h/p.tgz?access_token=abc&x=1", "https://h/p.tgz?access_token=REDACTED&x=1"],
    ["https://h/p?token=abc", "https://h/p?token=REDACTED"],
    [
      "https://b.s3/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=deadbeef&X-Amz-Expires=60",
      "https://b.s3/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Expires=60",
    ],
    ["https://h/blob?sig=abc&sv=2020", "https://h/blob?sig=REDACTED&sv=2020"],
    ["Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer REDACTED"],
    ["ssh://git@github.com/org/repo.git", "ssh://git@github.com/org/repo.git"],
    ["ssh://git:pw@github.com/org/repo.git", "ssh://github.com/org/repo.git"],
    ["docker.io/library/busybox:1.37@sha256:abc", "docker.io/library/busybox:1.37@sha256:abc"],
    ["https://h/p.tgz#sha256=abc", "https://h/p.tgz#sha256=abc"],
    ["registry authorization: denied", "registry authorization: denied"],
  ])("%s", (input, expected) => {
    expect(redactSecrets(input)).toBe(expected);
  });

  it("reaches every string of a structure, not its keys", () => {
    expect(redactDeep({ a: ["https://u:p@h/x"], "https://k:v@h": 1, n: 2, z: null })).toEqual({
      a: ["https://h/x"],
      "https://k:v@h": 1,
      n: 2,
      z: null,
    });
  });
});

describe("forTerminal", () => {
  it("escapes C0, ESC/CSI/OSC sequences, C1 and bidi controls", () => {
    expect(forTerminal("a\u001b[2Jb")).toBe("a\\e[2Jb");
    expect(forTerminal("\u001b]8;;http://evil\u0007link\u001b]8;;\u0007")).toBe(
      "\\e]8;;http://evil\\x07link\\e]8;;\\x07",
    );
    expect(forTerminal("x\u009b31my")).toBe("x\\x9b31my");
    expect(forTerminal("line1\nline2\r\b")).toBe("line1\\nline2\\r\\x08");
    expect(forTerminal("evil\u202egnp.exe")).toBe("evil\\u202egnp.exe");
    expect(forTerminal("plain → text é")).toBe("plain → text é");
  });

  it("redacts as well", () => {
    expect(forTerminal("GET https://u:secret@h/x\u001b[31m")).toBe("GET https://h/x\\e[31m");
  });
});
