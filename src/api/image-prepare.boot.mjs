// Upload pool worker entry when the service runs as TypeScript source (tests, tsx): registers
// tsx's loader in the worker, then serves image-prepare.ts. Compiled code uses image-prepare.js.
const { register } = await import('tsx/esm/api');
register();
const m = await import(new URL('./image-prepare.ts', import.meta.url).href);
export default m.default;
