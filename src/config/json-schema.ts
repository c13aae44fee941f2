/**
 * JSON Schema of bundle.config.yaml, for editors (yaml-language-server) and other tools. The committed
 * schema/bundle.config.schema.json is generated from this; a unit test keeps the two identical.
 */
import { z } from "zod";
import { bundleConfigSchema } from "./schema.js";

export function bundleConfigJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(bundleConfigSchema, { target: "draft-2020-12" }) as Record<string, unknown>;
  return { $schema: schema.$schema, title: "cinc-airgap bundle config", ...schema };
}

/** The exact text of the committed file. */
export function bundleConfigJsonSchemaText(): string {
  return `${JSON.stringify(bundleConfigJsonSchema(), null, 2)}\n`;
}
