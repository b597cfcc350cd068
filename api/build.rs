//! Embeds the browser assets that `compose/assets` builds into `api/portal/dist/` (the portal, the API docs
//! page and Swagger UI): writes `$OUT_DIR/assets.rs`, a table of `(path, content type, bytes)` with every file
//! `include_bytes!`-ed, so that the binary serves them without reading the disk or the network.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dist = manifest.join("portal").join("dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    println!("cargo:rerun-if-changed=build.rs");
    // `sqlx::migrate!` embeds ../migrations at compile time; cargo knows of that folder only from here, so a
    // migration added or changed rebuilds the crate.
    println!("cargo:rerun-if-changed=../migrations");
    let missing = ["docs/index.html", "portal/index.html"]
        .into_iter()
        .find(|f| !dist.join(f).is_file());
    if let Some(missing) = missing {
        // A build script has no other way to refuse than a panic; its message is what cargo prints.
        panic!(
            "\n\nthe browser assets are missing: {} has no {missing}.\n\
             Run `compose/assets` (npm ci && npm run build in api/portal/) once, then build again.\n\n",
            dist.display()
        );
    }
    let mut files = Vec::new();
    collect(&dist, &mut files);
    files.sort();
    let mut out =
        String::from("/// Every embedded asset: its path under `dist/`, content type and bytes.\n");
    out.push_str("pub static ASSETS: &[(&str, &str, &[u8])] = &[\n");
    for file in files {
        let Ok(relative) = file.strip_prefix(&dist) else {
            continue;
        };
        let relative = relative.to_string_lossy().replace('\\', "/");
        let _ = writeln!(
            out,
            "    ({relative:?}, {:?}, include_bytes!({:?})),",
            content_type(&relative),
            file.display().to_string()
        );
    }
    out.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(e) = std::fs::write(out_dir.join("assets.rs"), out) {
        panic!("cannot write assets.rs: {e}");
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "woff2" => "font/woff2",
        "ico" => "image/x-icon",
        _ => "text/plain; charset=utf-8",
    }
}
