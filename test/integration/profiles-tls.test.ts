/**
 * The CA option reaches profile downloads, git and the HTTP artifact repository: against the TLS
 * test registry (signed by the throwaway test CA, which the machine does not trust), requests fail
 * certificate verification without the option and get through TLS (to the registry's 401/404) with it.
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RemoteError } from "../../src/errors.js";
import { resolveProfiles } from "../../src/profiles/resolve.js";
import { openArtifactRepository } from "../../src/store/open-artifacts.js";
import { needEnv } from "../helpers/env.js";

let work: string;
let host: string;
let ca: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-profile-tls-"));
  host = needEnv("AIRGAP_TEST_REGISTRY_TLS");
  ca = needEnv("AIRGAP_TEST_CA");
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("TLS with a private CA", () => {
  it("profile url downloads verify the server with the CA file", async () => {
    const entry = { url: `https://${host}/v2/profile.tar.gz` };
    const without = await resolveProfiles([entry], { workDir: path.join(work, "a"), configDir: work }).catch(
      (e: unknown) => e,
    );
    expect(without).toBeInstanceOf(RemoteError);
    expect((without as Error).message).toMatch(/certificate|self.signed/i);
    const withCa = await resolveProfiles([entry], {
      workDir: path.join(work, "b"),
      configDir: work,
      caFile: ca,
    }).catch((e: unknown) => e);
    // through TLS: the registry itself answers (it has no such file)
    expect((withCa as RemoteError).status).toBe(404);
  });

  it("git sources get the CA file", async () => {
    const entry = { git: `https://${host}/repo.git`, branch: "main" };
    const env = { ...process.env };
    // the machine-wide GIT_SSL_CAINFO would otherwise decide; the product's option must
    delete process.env.GIT_SSL_CAINFO;
    try {
      const without = await resolveProfiles([entry], {
        workDir: path.join(work, "c"),
        configDir: work,
      }).catch((e: unknown) => e);
      expect((without as Error).message).toMatch(/certificate|SSL/i);
      const withCa = await resolveProfiles([entry], {
        workDir: path.join(work, "d"),
        configDir: work,
        caFile: ca,
      }).catch((e: unknown) => e);
      expect((withCa as Error).message).not.toMatch(/certificate problem|SSL/i);
      expect((withCa as Error).message).toContain(`git source https://${host}/repo.git`);
    } finally {
      process.env.GIT_SSL_CAINFO = env.GIT_SSL_CAINFO;
      if (env.GIT_SSL_CAINFO === undefined) delete process.env.GIT_SSL_CAINFO;
    }
  });

  it("the HTTP artifact repository verifies the server with the CA file", async () => {
    const base = `https://${host}/v2/`;
    const without = await openArtifactRepository(base, { env: {} });
    const e1 = await without.exists("", "0".repeat(64), 1).catch((e: unknown) => e);
    expect((e1 as Error).message).toMatch(/certificate|self.signed/i);
    const withCa = await openArtifactRepository(base, { env: {}, caFile: ca });
    const e2 = await withCa.exists("", "0".repeat(64), 1).catch((e: unknown) => e);
    expect((e2 as RemoteError).status).toBe(401);
  });
});
