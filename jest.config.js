import { availableParallelism } from 'node:os';

// Jest runs the TypeScript sources as native ES modules (NestJS 12 is ESM-only),
// transpiled by SWC. Unit specs sit next to their files; e2e tests live in test/.
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
      target: 'es2022',
    },
    module: { type: 'es6' },
  },
];
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testEnvironment: 'node',
  // No test runs under Jest's 5 s default: on a busy machine (a CPU hog on every core) a unit test
  // that builds a VM, a migration or a toolchain output takes tens of seconds. Tests that need
  // more say so; none asserts a duration.
  testTimeout: 300_000,
};
// Test files run side by side: Jest's default (one worker less than the cores) is one worker on a
// 2-core machine, which left a core idle while an e2e file waited on its service or child
// processes (docs/testing.md has the per-file times). HVSIM_TEST_WORKERS or --maxWorkers override.
const workers = Number(process.env.HVSIM_TEST_WORKERS) || Math.max(2, availableParallelism() - 1);

export default {
  maxWorkers: workers,
  testSequencer: '<rootDir>/test/support/sequencer.cjs',
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/src/**/*.spec.ts', '<rootDir>/bench/**/*.spec.ts'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/**/*.e2e.ts'] },
  ],
};
