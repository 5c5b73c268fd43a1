// Builds ui/dist, which is committed and embedded in the shoal binary (host/ui).
// `npm run dev` serves the sources with the API proxied to a local `shoal server`.
import { defineConfig } from 'vite';

export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Everything is a file under /assets: the page's CSP allows no inline data.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    chunkSizeWarningLimit: 1000,
  },
  server: {
    host: '127.0.0.1',
    proxy: { '/api': process.env.SHOAL_URL || 'http://127.0.0.1:8470' },
  },
});
