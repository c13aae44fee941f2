/**
 * Upstream signature policy at create: `verify:` rules check cosign simple-signing signatures of the
 * source image before it enters the bundle, and the result is recorded in bundle.json.
 */
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import {
  closeFixtures,
  ecdsaSigner,
  type PushedImage,
  plainTarget,
  pushCosignSignature,
  pushImage,
  uniqueRepo,
} from "../helpers/fixtures.js";

const target = plainTarget();
const ns = uniqueRepo("policy");
let work: string;
let signed: PushedImage;
let unsigned: PushedImage;
let goodPub: string;
let otherPub: string;

function keyPair(name: string): { pub: string; priv: ReturnType<typeof generateKeyPairSync>["privateKey"] } {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const pub = join(work, `${name}.pub`);
  writeFileSync(pub, publicKey.export({ type: "spki", format: "pem" }));
  return { pub, priv: privateKey };
}

function config(images: string[], keyFile: string): string {
  const file = join(work, `c-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    file,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: policy, version: 1.0.0 }
registries: [{ host: "${target.host}", plainHTTP: true }]
images:
${images.map((i) => `  - ref: ${target.host}/${ns}/${i}`).join("\n")}
verify:
  - match: "${target.host}/${ns}/*"
    key: ${keyFile}
`,
  );
  return file;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-policy-"));
  const good = keyPair("good");
  goodPub = good.pub;
  otherPub = keyPair("other").pub;
  signed = await pushImage(target, `${ns}/signed`, "1", { layerSizes: [1000] });
  await pushCosignSignature(target, `${ns}/signed`, signed.digest, { signer: ecdsaSigner(good.priv) });
  unsigned = await pushImage(target, `${ns}/unsigned`, "1", { layerSizes: [1000] });
});

afterAll(async () => {
  await closeFixtures();
});

describe("verify: rules at create", () => {
  it("accept an image signed with the rule's key and record the result", async () => {
    const out = join(work, "ok");
    const r = await runCli([
      "bundle",
      "create",
      "-c",
      config(["signed:1"], goodPub),
      "-o",
      out,
      "--cache",
      join(work, "cache"),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const inventory = JSON.parse(readFileSync(join(out, "bundle.json"), "utf8")) as {
      items: { name: string; policy?: { verified: boolean; key: string; via?: string }[] }[];
    };
    const policy = inventory.items[0]!.policy!;
    expect(policy).toHaveLength(1);
    expect(policy[0]!.verified).toBe(true);
    expect(policy[0]!.key).toBe(goodPub);
    expect(policy[0]!.via).toContain("simple-signing");
  });

  it("stop the create, exit 3, when the signature is by another key", async () => {
    const out = join(work, "wrong-key");
    const r = await runCli([
      "bundle",
      "create",
      "-c",
      config(["signed:1"], otherPub),
      "-o",
      out,
      "--cache",
      join(work, "cache"),
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${ns}/signed:1`);
    expect(r.stderr).toContain(otherPub);
    expect(existsSync(out)).toBe(false);
  });

  it("stop the create when a matching image has no signature at all", async () => {
    const out = join(work, "unsigned");
    const r = await runCli([
      "bundle",
      "create",
      "-c",
      config(["signed:1", "unsigned:1"], goodPub),
      "-o",
      out,
      "--cache",
      join(work, "cache"),
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${ns}/unsigned:1`);
    expect(r.stderr).toMatch(/no cosign \.sig tag|not signed/);
    expect(existsSync(out)).toBe(false);
    expect(unsigned.digest).toMatch(/^sha256:/);
  });
});
