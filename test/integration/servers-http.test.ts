/** The git, static-file and raw-repository test servers behave like the real ones users have. */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { request } from "undici";
import { describe, expect, test } from "vitest";
import { testEnv } from "../helpers/env.js";
import { GIT_ENV, git, makeGitRepo } from "../helpers/git.js";

const run = promisify(execFile);

describe("git over HTTP", () => {
  test("clones a bare repository created in the git root, by tag, and refuses pushes", async () => {
    const name = `repo-${randomBytes(4).toString("hex")}`;
    const repo = await makeGitRepo(name, [
      { files: { "inspec.yml": "name: one\nversion: 1.0.0\n" }, tags: ["v1.0.0"] },
      { files: { "inspec.yml": "name: one\nversion: 1.1.0\n", "controls/a.rb": "# a\n" }, tags: ["v1.1.0"] },
    ]);
    expect(repo.url).toBe(`${testEnv().gitUrl}/${name}.git`);
    const dir = await mkdtemp(path.join(tmpdir(), "airgap-clone-"));
    try {
      await run("git", ["clone", "-q", "--depth", "1", "--branch", "v1.0.0", repo.url, path.join(dir, "c")], {
        env: GIT_ENV,
      });
      expect(await readFile(path.join(dir, "c", "inspec.yml"), "utf8")).toBe("name: one\nversion: 1.0.0\n");
      expect(await git(path.join(dir, "c"), "rev-parse", "HEAD")).toBe(repo.commits[0]);

      await writeFile(path.join(dir, "c", "new.txt"), "x");
      await git(path.join(dir, "c"), "add", "new.txt");
      await git(path.join(dir, "c"), "commit", "-qm", "push attempt");
      await expect(
        git(path.join(dir, "c"), "push", "-q", "origin", "HEAD:refs/heads/other"),
      ).rejects.toThrow();
      expect((await git(repo.bare, "branch", "--list")).trim()).toBe("* main");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("static files", () => {
  test("serves a file written into the root, with HEAD and Range", async () => {
    const env = testEnv();
    const name = `file-${randomBytes(4).toString("hex")}.tar.gz`;
    const content = randomBytes(10_000);
    await writeFile(path.join(env.httpRoot, name), content);
    const full = await request(`${env.httpUrl}/${name}`);
    expect(full.statusCode).toBe(200);
    expect(Buffer.from(await full.body.arrayBuffer()).equals(content)).toBe(true);
    const part = await request(`${env.httpUrl}/${name}`, { headers: { range: "bytes=100-199" } });
    expect(part.statusCode).toBe(206);
    expect(Buffer.from(await part.body.arrayBuffer()).equals(content.subarray(100, 200))).toBe(true);
    const missing = await request(`${env.httpUrl}/absent-${name}`);
    await missing.body.dump();
    expect(missing.statusCode).toBe(404);
  });
});

describe("HTTP raw repository", () => {
  test("accepts PUT with Basic auth, refuses it without, and returns the bytes", async () => {
    const env = testEnv();
    const url = `${env.davUrl}/servers-test/${randomBytes(4).toString("hex")}/tool.bin`;
    const content = randomBytes(50_000);
    const auth = `Basic ${Buffer.from(`${env.davUser}:${env.davPassword}`).toString("base64")}`;
    const wrong = `Basic ${Buffer.from(`${env.davUser}:not-the-password`).toString("base64")}`;

    const anonymous = await request(url, { method: "PUT", body: content });
    await anonymous.body.dump();
    expect(anonymous.statusCode).toBe(401);
    const badPassword = await request(url, {
      method: "PUT",
      body: content,
      headers: { authorization: wrong },
    });
    await badPassword.body.dump();
    expect(badPassword.statusCode).toBe(401);

    const put = await request(url, { method: "PUT", body: content, headers: { authorization: auth } });
    await put.body.dump();
    expect(put.statusCode).toBe(201);

    const head = await request(url, { method: "HEAD", headers: { authorization: auth } });
    await head.body.dump();
    expect(head.statusCode).toBe(200);
    expect(head.headers["content-length"]).toBe(String(content.length));
    const get = await request(url, { headers: { authorization: auth } });
    expect(Buffer.from(await get.body.arrayBuffer()).equals(content)).toBe(true);
    const anonymousGet = await request(url);
    await anonymousGet.body.dump();
    expect(anonymousGet.statusCode).toBe(401);
  });
});
