#!/usr/bin/env node
// Writes schema/bundle.config.schema.json from the zod schema. Run after `npm run build`:
//   npm run build && node scripts/export-schema.mjs
// test/unit/config-schema.test.ts fails when the committed file differs from a fresh export.
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { bundleConfigJsonSchemaText } from "../dist/config/json-schema.js";

const out = fileURLToPath(new URL("../schema/bundle.config.schema.json", import.meta.url));
await writeFile(out, bundleConfigJsonSchemaText());
console.log(`wrote ${out}`);
