import { describe, expect, it } from "vitest";
import { followRedirect, type Hop, RedirectRefused } from "../../src/net/follow.js";
import { checkRealm } from "../../src/oci/registry/auth.js";

const creds = {
  authorization: "Basic c2VjcmV0",
  cookie: "session=1",
  "proxy-authorization": "Basic cHJveHk=",
  "X-Amz-Security-Token": "t",
  "user-agent": "airgap",
  accept: "application/json",
};

function hop(url: string, extra: Partial<Hop<string>> = {}): Hop<string> {
  return { method: "GET", url: new URL(url), headers: { ...creds }, ...extra };
}

describe("followRedirect: what follows a request to its redirect target", () => {
  it("same origin: every header and the body follow", () => {
    const next = followRedirect(
      hop("https://reg.example/v2/a", { method: "PUT", body: "x" }),
      new URL("https://reg.example/v2/b"),
      307,
    );
    expect(next.headers).toEqual(creds);
    expect(next.body).toBe("x");
    expect(next.method).toBe("PUT");
  });

  it("another origin (host, port or scheme): no credential header follows, others do", () => {
    for (const to of ["https://storage.example/x", "http://reg.example:8443/x", "https://reg.example/x"]) {
      const next = followRedirect(hop("http://reg.example/v2/a"), new URL(to), 302);
      expect(next.headers).toEqual({ "user-agent": "airgap", accept: "application/json" });
    }
  });

  it("https to http is refused, unless the target host is named plain-HTTP", () => {
    const from = hop("https://reg.example/v2/a");
    expect(() => followRedirect(from, new URL("http://reg.example/v2/a"), 301)).toThrow(RedirectRefused);
    expect(() => followRedirect(from, new URL("http://cdn.example/a"), 302)).toThrow(
      /from https to plain http/,
    );
    const next = followRedirect(from, new URL("http://cdn.example/a"), 302, {
      plainHttpAllowed: (h) => h === "cdn.example",
    });
    expect(next.headers.authorization).toBeUndefined();
  });

  it("only http(s) targets are followed", () => {
    expect(() => followRedirect(hop("https://a.example/"), new URL("file:///etc/passwd"), 302)).toThrow(
      /only http and https/,
    );
  });

  it("a credential body never goes to another origin, whatever the status; it does follow on the same origin", () => {
    const post = hop("https://auth.example/token", {
      method: "POST",
      body: "refresh_token=s",
      credentialBody: true,
    });
    for (const status of [301, 302, 303, 307, 308]) {
      expect(() => followRedirect(post, new URL("https://evil.example/token"), status)).toThrow(
        /carries a credential/,
      );
    }
    const same = followRedirect(post, new URL("https://auth.example/v2/token"), 307);
    expect(same.body).toBe("refresh_token=s");
    expect(same.method).toBe("POST");
  });

  it("303, and 301/302 after a POST, become a GET without body or content headers", () => {
    const post = hop("https://a.example/x", {
      method: "POST",
      body: "data",
      headers: { "content-type": "text/plain", "content-length": "4" },
    });
    for (const status of [301, 302, 303]) {
      const next = followRedirect(post, new URL("https://a.example/y"), status);
      expect(next).toEqual({ method: "GET", url: new URL("https://a.example/y"), headers: {} });
    }
    expect(
      followRedirect(hop("https://a.example/x", { method: "HEAD" }), new URL("https://a.example/y"), 303)
        .method,
    ).toBe("HEAD");
  });
});

describe("checkRealm: where a registry may send clients for tokens", () => {
  const https = { registryUrl: new URL("https://reg.example"), plainHttpAllowed: () => false };
  it("a realm on another host is allowed over https", () => {
    expect(checkRealm("https://auth.example/token", "reg.example", https).host).toBe("auth.example");
  });
  it("an http realm of an https registry is refused unless its host is named plain-HTTP", () => {
    expect(() => checkRealm("http://auth.example/token", "reg.example", https)).toThrow(
      /plain http; refused/,
    );
    expect(
      checkRealm("http://auth.example/token", "reg.example", {
        ...https,
        plainHttpAllowed: (h) => h === "auth.example",
      }).protocol,
    ).toBe("http:");
  });
  it("an http registry may name an http realm", () => {
    const plain = { registryUrl: new URL("http://127.0.0.1:5000"), plainHttpAllowed: () => false };
    expect(checkRealm("http://127.0.0.1:5001/token", "127.0.0.1:5000", plain).port).toBe("5001");
  });
  it("non-http(s) realms, realms with user info and non-URLs are refused", () => {
    expect(() => checkRealm("file:///x", "r", https)).toThrow(/not http/);
    expect(() => checkRealm("https://u:p@auth.example/", "r", https)).toThrow(/user info/);
    expect(() => checkRealm("token", "r", https)).toThrow(/not a URL/);
  });
});
