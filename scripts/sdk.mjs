// Generates the SDK's types, src/client/schema.ts, from openapi.yaml with openapi-typescript
// (run by `npm run openapi` after it writes openapi.yaml). With --check it only checks that the
// file is current (exit status 1 when not); test/sdk.e2e.ts runs it so.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = ['node_modules/openapi-typescript/bin/cli.js', 'openapi.yaml', '-o', 'src/client/schema.ts', '--root-types', '--root-types-no-schema-prefix'];
execFileSync(process.execPath, [...args, ...process.argv.slice(2).filter((a) => a === '--check')], { cwd: root, stdio: 'inherit' });
