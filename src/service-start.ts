/** The hvsim service, started from the environment (what dist/main.js runs, bundled or not). */
// First: decorated classes need Reflect.metadata when they are defined, and in the bundle the
// chunks that define them may be evaluated before server.ts's own import of it.
import 'reflect-metadata';
import { runServiceFromEnv } from './service-main.js';

runServiceFromEnv().catch((e) => {
  process.stderr.write(`hvsim: failed to start: ${e instanceof Error ? e.message : e}\n`);
  process.exit(1);
});
