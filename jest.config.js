/** Unit tests need no database; integration tests run against a real PostgreSQL. */
const transform = { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }] };
const database = {
  testEnvironment: "node",
  transform,
  globalSetup: "<rootDir>/test/support/global-setup.ts",
  globalTeardown: "<rootDir>/test/support/global-teardown.ts",
  slowTestThreshold: 30,
};

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 60000,
  // A handle some test leaves open (a keep-alive socket of a client, a child's pipe) must not keep
  // a finished run waiting: every file already checks its own connections and objects.
  forceExit: true,
  projects: [
    { displayName: "unit", testEnvironment: "node", roots: ["<rootDir>/test/unit"], transform },
    { displayName: "integration", roots: ["<rootDir>/test/integration"], ...database },
    {
      // The TypeORM layer again, on the 0.3 line most installations still run.
      displayName: "typeorm-0.3",
      roots: ["<rootDir>/test/integration"],
      testMatch: ["**/orm-*.test.ts", "**/cleanup-trigger-sync.test.ts"],
      moduleNameMapper: {
        "^typeorm$": "<rootDir>/node_modules/typeorm-0.3",
        "^typeorm/(.*)$": "<rootDir>/node_modules/typeorm-0.3/$1",
      },
      ...database,
    },
  ],
};
