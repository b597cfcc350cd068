// Writes the assets the haltless binary embeds (api/build.rs reads dist/): the portal built by Vite into
// dist/portal/, and the docs page with Swagger UI's bundle and stylesheet from node_modules into dist/docs/.
// Nothing here is fetched at run time: the binary serves every file from itself.
import { copyFileSync, mkdirSync, rmSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(here, "dist");
rmSync(dist, { recursive: true, force: true });

await build({ root: here, configFile: join(here, "vite.config.mjs"), logLevel: "warn" });

const docs = join(dist, "docs");
mkdirSync(docs, { recursive: true });
const swagger = join(here, "node_modules", "swagger-ui-dist");
for (const file of ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"]) {
  copyFileSync(join(swagger, file), join(docs, file));
}
for (const file of readdirSync(join(here, "docs"))) {
  copyFileSync(join(here, "docs", file), join(docs, file));
}
console.log(`assets written to ${dist}`);
