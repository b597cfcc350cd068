// The portal's build: plain modules, hashed file names under /assets/, written to dist/portal/ for the
// binary to embed. No inline script or style is produced, so the page runs under `script-src 'self'`.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist/portal",
    emptyOutDir: true,
    assetsDir: "assets",
    // Everything is a file of its own: no data: URLs for the content policy to allow.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
