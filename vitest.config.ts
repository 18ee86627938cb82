// Test projects: fast unit tests, and integration tests against the real broker and Redis that the
// global setup provides. Coverage of lib/ and services/ is enforced here.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    coverage: {
      provider: "v8",
      include: ["lib/**/*.ts", "services/**/*.ts"],
      // Service entry files (services/*/main.ts) only wire a service together and run as child
      // processes in the end-to-end suite, where v8 coverage of the test runner does not reach.
      exclude: ["**/*.test.ts", "services/*/main.ts"],
      reporter: ["text-summary", "text", "json-summary"],
      thresholds: { lines: 80, statements: 80, functions: 80, branches: 80 },
    },
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["{lib,services,infra,test}/**/*.test.ts"],
          exclude: ["**/*.integration.test.ts", "node_modules/**"],
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["{lib,services,infra,test}/**/*.integration.test.ts"],
          globalSetup: ["test/setup/global.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
