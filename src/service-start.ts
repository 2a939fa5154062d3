/** The hvsim service, started from the environment (what dist/main.js runs, bundled or not). */
import { runServiceFromEnv } from './service-main.js';

runServiceFromEnv().catch((e) => {
  process.stderr.write(`hvsim: failed to start: ${e instanceof Error ? e.message : e}\n`);
  process.exit(1);
});
