// Writes the assets the haltless binary embeds (api/build.rs reads dist/): the portal built by Vite into
// dist/portal/, and the docs page with Swagger UI's bundle and stylesheet from node_modules into dist/docs/.
// Nothing here is fetched at run time: the binary serves every file from itself.
//
// Everything is built into a staging folder first, and dist/ then takes only the files that changed (and
// loses those that are gone): cargo rebuilds the binary whenever a file under dist/ is newer than its last
// build, so rewriting identical files would cost a release build of the API on every `compose/up`.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(here, "dist");
const staging = join(here, "node_modules", ".haltless-dist");
rmSync(staging, { recursive: true, force: true });

await build({
  root: here,
  configFile: join(here, "vite.config.mjs"),
  logLevel: "warn",
  build: { outDir: join(staging, "portal") },
});

const docs = join(staging, "docs");
mkdirSync(docs, { recursive: true });
const swagger = join(here, "node_modules", "swagger-ui-dist");
for (const file of ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"]) {
  copyFileSync(join(swagger, file), join(docs, file));
}
for (const file of readdirSync(join(here, "docs"))) {
  copyFileSync(join(here, "docs", file), join(docs, file));
}

/** Every file under `dir`, as paths relative to it. */
function files(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile())
    .map((f) => relative(dir, f));
}

const built = new Set(files(staging));
let changed = 0;
for (const file of files(dist)) {
  if (!built.has(file)) {
    rmSync(join(dist, file));
    changed++;
  }
}
for (const file of built) {
  const from = join(staging, file);
  const to = join(dist, file);
  if (existsSync(to) && readFileSync(from).equals(readFileSync(to))) continue;
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
  changed++;
}
rmSync(staging, { recursive: true, force: true });
console.log(`assets in ${dist}: ${changed} file(s) written or removed`);
