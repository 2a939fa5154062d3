/**
 * Runs the service from the environment until SIGINT/SIGTERM (shared by `npm start` and
 * `hvsim serve`). A bad configuration value prints one line and exits with status 2.
 */
import { ConfigError, loadConfig } from './config/config.js';
import { startService } from './server.js';

export async function runServiceFromEnv(): Promise<void> {
  let config;
  try { config = loadConfig(); } catch (e) {
    if (e instanceof ConfigError) { process.stderr.write(`hvsim: configuration error: ${e.message}\n`); process.exit(2); }
    throw e;
  }
  const svc = await startService(config);
  process.stdout.write(`hvsim listening on ${svc.url} (database: ${config.databaseUrl ? 'postgres' : config.embedded.memory ? 'embedded, in memory' : `embedded, ${config.embedded.dataDir}`})\n`);
  if (svc.generatedToken) process.stdout.write(`admin token (shown once): ${svc.adminToken}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`hvsim: ${signal}, shutting down\n`);
    svc.close().then(() => process.exit(0), (e) => { process.stderr.write(`hvsim: shutdown failed: ${e}\n`); process.exit(1); });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
