import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Integration tests share real servers started by scripts/test.sh; files run in parallel
    // but each uses its own repositories, folders and buckets.
    pool: "forks",
    globalSetup: ["test/helpers/global-setup.ts"],
  },
});
