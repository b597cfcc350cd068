// Writes the assets the haltless binary embeds (api/build.rs reads dist/): the docs page, Swagger UI's
// bundle and stylesheet from node_modules, and the page's own script and style. Nothing here is fetched at
// run time: the binary serves every file from itself.
import { copyFileSync, mkdirSync, rmSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(here, "dist");
rmSync(dist, { recursive: true, force: true });

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
