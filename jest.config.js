'use strict';
// Unit specs sit next to the code (src/**/*.spec.ts) and beside the emulators; end-to-end specs
// live in test/e2e and share one PostgreSQL started by the global setup.
const shared = {
  testEnvironment: 'node',
  transform: { '\\.[cm]?[jt]s$': '<rootDir>/test/jest-transform.js' },
  // Let the ESM-only packages through the transformer; everything else in node_modules is CommonJS.
  transformIgnorePatterns: ['/node_modules/(?!(@nestjs|@apidevtools|file-type|strtok3|token-types|uint8array-extras|@tokenizer|load-esm|qs-esm|content-disposition|@fastify/static/node_modules/content-disposition)/)'],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
  // Sources import siblings as `./x.js` (Node's ESM-style resolution); Jest must find `./x.ts`.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
};

module.exports = {
  projects: [
    { ...shared, displayName: 'unit', testMatch: ['<rootDir>/src/**/*.spec.ts', '<rootDir>/test/emulators/**/*.spec.ts'] },
    {
      ...shared,
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/e2e/**/*.e2e-spec.ts'],
      globalSetup: '<rootDir>/test/e2e/global-setup.ts',
      globalTeardown: '<rootDir>/test/e2e/global-teardown.ts',
    },
  ],
  // e2e specs boot a real application on their own database copy and spawn CLI processes: give tests
  // and hooks room on a busy machine. A global option: Jest ignores testTimeout inside `projects`.
  testTimeout: 30_000,
};
