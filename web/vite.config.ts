// The dashboard's build: `npm run build` (and so `npm install`) writes web/dist, which the
// service serves at /. Everything is bundled: the page loads nothing from elsewhere.
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

export default defineConfig({
  plugins: [preact()],
  base: './',
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 2048 },
  logLevel: 'warn',
});
