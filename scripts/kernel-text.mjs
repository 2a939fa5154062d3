// Assembles the guest kernel's text for every mitigation ahead of time into
// dist/guest/kernel-text.prebuilt.json, which src/guest/kernel-text.ts reads instead of
// assembling it again in every process (~10 ms of `hvsim run`'s start-up); a text there whose
// source is not what the module generates is ignored.
// Usage: node scripts/kernel-text.mjs   (run by `npm run build` after tsc).
import { writeFileSync } from 'node:fs';
import { prebuiltKernelTexts } from '../dist/guest/kernel-text.js';

const out = new URL('../dist/guest/kernel-text.prebuilt.json', import.meta.url);
const json = prebuiltKernelTexts();
writeFileSync(out, json + '\n');
process.stdout.write(`kernel text: ${json.length} bytes of JSON into dist/guest/kernel-text.prebuilt.json\n`);
