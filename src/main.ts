/**
 * `npm start`: the hvsim service. Runs the bundle of the service (dist/bundle/service.js, built by
 * `npm run build` with scripts/bundle.mjs; it loads in a fraction of the CPU time of the ~2,600
 * separate modules) when there is one and HVSIM_NO_BUNDLE is unset, else the modules themselves.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bundle = new URL('./bundle/service.js', import.meta.url);
const useBundle = !process.env.HVSIM_NO_BUNDLE && import.meta.url.endsWith('.js') && existsSync(fileURLToPath(bundle));
await import(useBundle ? bundle.href : './service-start.js');
