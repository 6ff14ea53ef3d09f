/** Unit tests need no database; integration tests run against a real PostgreSQL. */
const transform = { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }] };

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 60000,
  projects: [
    {
      displayName: "unit",
      testEnvironment: "node",
      roots: ["<rootDir>/test/unit"],
      transform,
    },
    {
      displayName: "integration",
      testEnvironment: "node",
      roots: ["<rootDir>/test/integration"],
      transform,
      globalSetup: "<rootDir>/test/support/global-setup.ts",
      globalTeardown: "<rootDir>/test/support/global-teardown.ts",
      slowTestThreshold: 30,
    },
  ],
};
