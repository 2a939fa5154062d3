// Writes openapi.yaml from the code: the compiled service (dist/, built by `npm run openapi`)
// on an in-memory database, listening on a random loopback port only while generating.
// (Nest's dependency injection needs decorator metadata, which tsx/esbuild does not emit.)
// Then generates the SDK's types (src/client/schema.ts) from it with openapi-typescript.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../dist/config/config.js';
import { startService } from '../dist/server.js';
import { openApiYaml } from '../dist/openapi.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const svc = await startService(loadConfig({ HVSIM_DB: 'memory', PORT: '0', HVSIM_ADMIN_TOKEN: 'openapi-generation-token', HVSIM_LOG_LEVEL: 'silent' }));
try {
  writeFileSync(new URL('../openapi.yaml', import.meta.url), openApiYaml(svc.app));
} finally {
  await svc.close();
}
execFileSync(process.execPath, [fileURLToPath(new URL('sdk.mjs', import.meta.url))], { cwd: root, stdio: 'inherit' });
