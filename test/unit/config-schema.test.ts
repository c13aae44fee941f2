import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";
import { bundleConfigJsonSchemaText, bundleConfigSchema } from "../../src/config/index.js";

const committed = new URL("../../schema/bundle.config.schema.json", import.meta.url);

describe("schema/bundle.config.schema.json", () => {
  it("is exactly what the zod schema exports (regenerate: npm run build && node scripts/export-schema.mjs)", async () => {
    expect(await readFile(committed, "utf8")).toBe(bundleConfigJsonSchemaText());
  });

  it("forbids unknown keys everywhere and names the required top-level keys", async () => {
    const schema = JSON.parse(await readFile(committed, "utf8"));
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(schema.required).toEqual(["apiVersion", "kind", "metadata"]);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.images.items.additionalProperties).toBe(false);
    expect(schema.properties.registries.items.properties).not.toHaveProperty("password");
    expect(schema.properties.profiles.items.anyOf.map((b: { required: string[] }) => b.required[0])).toEqual([
      "git",
      "supermarket",
      "url",
      "path",
      "oci",
    ]);
  });

  it("the zod schema accepts the README-style example without normalization", () => {
    const doc = parse(`apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: x, version: "1" }
images: [{ ref: alpine }]
`);
    expect(bundleConfigSchema.safeParse(doc).success).toBe(true);
    expect(z.toJSONSchema(bundleConfigSchema)).toBeTypeOf("object");
  });
});
