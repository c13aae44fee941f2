import { describe, expect, it } from "vitest";
import { formatChecksums, parseChecksums } from "../../src/bundle/checksums.js";
import { IntegrityError } from "../../src/errors.js";

const A = "a".repeat(64);
const B = "b".repeat(64);

function refused(text: string): IntegrityError {
  try {
    parseChecksums(text);
  } catch (err) {
    expect(err).toBeInstanceOf(IntegrityError);
    return err as IntegrityError;
  }
  throw new Error("accepted");
}

describe("formatChecksums", () => {
  it("writes sha256sum lines sorted byte-wise by path", () => {
    const text = formatChecksums([
      { path: "oci-layout", sha256: A },
      { path: "blobs/sha256/x", sha256: B },
      { path: "Z", sha256: A },
      { path: "bundle.json", sha256: B },
    ]);
    expect(text).toBe(`${A}  Z\n${B}  blobs/sha256/x\n${B}  bundle.json\n${A}  oci-layout\n`);
  });

  it("round-trips through parseChecksums", () => {
    const entries = [
      { path: "index.json", sha256: A },
      { path: "blobs/sha256/y", sha256: B },
    ];
    expect(parseChecksums(formatChecksums(entries))).toEqual(new Map(entries.map((e) => [e.path, e.sha256])));
  });

  it("refuses duplicates, bad digests, unsafe paths and listing itself", () => {
    expect(() =>
      formatChecksums([
        { path: "a", sha256: A },
        { path: "a", sha256: B },
      ]),
    ).toThrow(/twice/);
    expect(() => formatChecksums([{ path: "a", sha256: "A".repeat(64) }])).toThrow(/hex/);
    expect(() => formatChecksums([{ path: "../a", sha256: A }])).toThrow(IntegrityError);
    expect(() => formatChecksums([{ path: "SHA256SUMS.sig", sha256: A }])).toThrow(/cannot list/);
  });
});

describe("parseChecksums", () => {
  it("accepts text and binary mode lines, upper-case hex and a leading ./", () => {
    const m = parseChecksums(`${A}  a\n${B} *b c\n${A.toUpperCase()}  ./d/e\n`);
    expect(m).toEqual(
      new Map([
        ["a", A],
        ["b c", B],
        ["d/e", A],
      ]),
    );
  });

  it("names the malformed line", () => {
    const e = refused(`${A}  a\nnot a checksum\n`);
    expect(e.code).toBe("MALFORMED");
    expect(e.item).toBe("SHA256SUMS");
    expect(e.message).toContain("line 2");
    expect(refused(`${A}  a\n\n${B}  b\n`).message).toContain("line 2");
    expect(refused(`${A.slice(1)}  a\n`).code).toBe("MALFORMED");
  });

  it("refuses absolute paths and .. with PATH_ESCAPE", () => {
    for (const p of ["/etc/passwd", "../x", "blobs/../../x"]) {
      const e = refused(`${A}  ok\n${B}  ${p}\n`);
      expect(e.code).toBe("PATH_ESCAPE");
      expect(e.message).toContain("line 2");
    }
  });

  it("refuses a path listed twice, even spelled differently", () => {
    const e = refused(`${A}  a\n${B}  ./a\n`);
    expect(e.code).toBe("MALFORMED");
    expect(e.message).toMatch(/line 2.*twice/);
  });

  it("refuses SHA256SUMS listing itself or its signatures", () => {
    expect(refused(`${A}  SHA256SUMS\n`).code).toBe("MALFORMED");
    expect(refused(`${A}  SHA256SUMS.sigstore.json\n`).code).toBe("MALFORMED");
  });

  it("accepts an empty file", () => {
    expect(parseChecksums("").size).toBe(0);
  });
});
