/**
 * A real distribution registry (docker-registry) configured for Bearer token auth, with a small
 * token service in this process: it checks Basic credentials, grants known users what they ask
 * for (anonymous callers nothing), exchanges an identity token with the refresh_token grant when
 * given one, signs ES256 JWTs the registry verifies, and records every token it issued (and how it
 * was asked for), so a test can look for them where they must not be.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes, sign } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, createServer as createNetServer } from "node:net";
import { join } from "node:path";

/** One token the service handed out: how it was asked for, for whom, and what it grants. */
export interface IssuedToken {
  method: string;
  /** The known user it was issued to; absent for an anonymous caller (who is granted nothing). */
  account?: string;
  scopes: string[];
  /** `refresh_token` for an identity-token exchange (POST). */
  grant?: string;
}

export interface TokenRegistry {
  /** host:port of the registry (plain HTTP). */
  host: string;
  /** The token service's URL, the realm of the registry's challenges. */
  realm: string;
  /** Every token the service handed out. */
  tokens: string[];
  /** Every token request the service granted, in order (a test may empty it between steps). */
  issued: IssuedToken[];
  /** A token the registry accepts, signed as the service signs them (for a test's own servers). */
  sign(scopes: string[], subject: string): string;
  close(): Promise<void>;
}

export interface TokenRegistryOptions {
  /**
   * An identity token (docker's `identitytoken`) the service exchanges for access tokens with the
   * OAuth2 refresh_token grant (POST), as Docker Hub, ACR and Harbor's OIDC users do.
   */
  refreshToken?: string;
}

const SERVICE = "airgap-token-registry";
const ISSUER = "airgap-test-issuer";

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Start one in `dir` (its config, signing key and storage live there). */
export async function startTokenRegistry(
  dir: string,
  account: { user: string; password: string },
  options: TokenRegistryOptions = {},
): Promise<TokenRegistry> {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=airgap token signer",
      "-keyout",
      join(dir, "signer.key"),
      "-out",
      join(dir, "signer.crt"),
    ],
    { stdio: "ignore" },
  );
  const keyPem = readFileSync(join(dir, "signer.key"), "utf8");
  const certDer = execFileSync("openssl", [
    "x509",
    "-in",
    join(dir, "signer.crt"),
    "-outform",
    "DER",
  ]).toString("base64");
  const tokens: string[] = [];
  const issued: IssuedToken[] = [];
  const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");
  const jwt = (scopes: string[], sub: string): string => {
    const access = scopes.map((s) => {
      const [type, ...rest] = s.split(":");
      const actions = rest.pop() ?? "";
      return { type, name: rest.join(":"), actions: actions.split(",").filter(Boolean) };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ typ: "JWT", alg: "ES256", x5c: [certDer] }));
    const claims = b64url(
      JSON.stringify({
        iss: ISSUER,
        sub,
        aud: SERVICE,
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: randomBytes(8).toString("hex"),
        access,
      }),
    );
    const sig = sign("sha256", Buffer.from(`${header}.${claims}`), {
      key: keyPem,
      dsaEncoding: "ieee-p1363",
    });
    return `${header}.${claims}.${b64url(sig)}`;
  };

  const refused = (res: ServerResponse, details: string) =>
    res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ details }));
  const tokenServer: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://x");
      let known = false;
      let scopes: string[];
      let grant: string | undefined;
      if (req.method === "POST") {
        const form = new URLSearchParams(body);
        grant = form.get("grant_type") ?? undefined;
        if (
          options.refreshToken === undefined ||
          grant !== "refresh_token" ||
          form.get("refresh_token") !== options.refreshToken ||
          form.get("service") !== SERVICE
        ) {
          refused(res, "bad refresh token");
          return;
        }
        known = true;
        scopes = (form.get("scope") ?? "").split(" ").filter(Boolean);
      } else {
        const auth = req.headers.authorization;
        if (auth) {
          const [u, p] = Buffer.from(auth.replace(/^Basic /, ""), "base64")
            .toString()
            .split(":");
          if (u !== account.user || p !== account.password) {
            refused(res, "wrong credentials");
            return;
          }
          known = true;
        }
        scopes = url.searchParams.getAll("scope");
      }
      issued.push({
        method: req.method ?? "",
        ...(known ? { account: account.user } : {}),
        scopes,
        ...(grant ? { grant } : {}),
      });
      // anonymous callers get nothing; the known user gets what it asks for
      const token = jwt(known ? scopes : [], known ? account.user : "");
      tokens.push(token);
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
    });
  });
  await new Promise<void>((r) => tokenServer.listen(0, "127.0.0.1", () => r()));
  const realm = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/token`;

  const host = `127.0.0.1:${await freePort()}`;
  writeFileSync(
    join(dir, "config.yml"),
    [
      "version: 0.1",
      "log:",
      "  level: warn",
      "  accesslog:",
      "    disabled: true",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${join(dir, "storage")}`,
      "http:",
      `  addr: ${host}`,
      `  secret: ${randomBytes(12).toString("hex")}`,
      "auth:",
      "  token:",
      `    realm: ${realm}`,
      `    service: ${SERVICE}`,
      `    issuer: ${ISSUER}`,
      `    rootcertbundle: ${join(dir, "signer.crt")}`,
      "",
    ].join("\n"),
  );
  const proc: ChildProcess = spawn("docker-registry", ["serve", join(dir, "config.yml")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  proc.stderr?.on("data", (d) => {
    stderr += d;
  });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://${host}/v2/`)).status === 401) break;
    } catch {
      // not up yet
    }
    if (i > 100) {
      proc.kill("SIGTERM");
      throw new Error(`token registry did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    realm,
    tokens,
    issued,
    sign: jwt,
    close: async () => {
      proc.kill("SIGTERM");
      tokenServer.closeAllConnections();
      await new Promise((r) => tokenServer.close(r));
    },
  };
}
