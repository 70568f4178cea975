//! Builds the admin UI (`admin-ui/` → `admin-ui/dist`) that `src/ui.rs` embeds, so that
//! `cargo run --release` on a fresh clone serves the whole product.
//!
//! - `admin-ui/dist` missing, a placeholder, or older than any UI source: run `npm ci` (only
//!   when `node_modules` is missing or older than `package-lock.json`) and `npm run build`.
//! - npm not installed, or the build failing: write a placeholder `dist/index.html` that says
//!   how to build the UI, and warn (the server itself still builds and runs).
//! - `VELLUM_SKIP_UI_BUILD=1`: never run npm (a placeholder is written if there is no build).
//!
//! Cargo reruns this script only when a UI source, `dist` or this file changes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

const PLACEHOLDER_MARK: &str = "vellum-admin-ui-placeholder";

/// The inputs of the UI build (relative to `admin-ui/`).
const SOURCES: [&str; 8] = [
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
    "tsconfig.node.json",
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let ui = root.join("admin-ui");
    let dist = ui.join("dist");

    println!("cargo:rerun-if-changed=build.rs");
    // `sqlx::migrate!` embeds the migrations when the crate compiles, and cargo does not
    // know it read them: without this a new migration file was missed until something
    // else rebuilt the crate.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=VELLUM_SKIP_UI_BUILD");
    for s in SOURCES {
        if ui.join(s).exists() {
            println!("cargo:rerun-if-changed=admin-ui/{s}");
        }
    }
    // Watching `dist` makes a deleted or replaced build trigger this script (release builds
    // embed the files, so new file names must recompile the crate).
    println!("cargo:rerun-if-changed=admin-ui/dist");

    if !ui.join("package.json").exists() {
        ensure_placeholder(&dist, "the admin-ui/ folder is missing from this checkout");
        return;
    }
    if !needs_build(&ui, &dist) {
        return;
    }
    if std::env::var("VELLUM_SKIP_UI_BUILD").is_ok_and(|v| v == "1") {
        ensure_placeholder(&dist, "VELLUM_SKIP_UI_BUILD=1 was set");
        return;
    }
    if let Err(why) = build(&ui) {
        println!("cargo:warning=admin UI not built ({why}); the server will serve a placeholder page");
        write_placeholder(&dist, &why);
    }
}

fn needs_build(ui: &Path, dist: &Path) -> bool {
    let index = dist.join("index.html");
    let Some(built) = mtime(&index) else {
        return true;
    };
    if fs::read_to_string(&index).is_ok_and(|s| s.contains(PLACEHOLDER_MARK)) {
        return true;
    }
    SOURCES.iter().filter_map(|s| newest(&ui.join(s))).any(|t| t > built)
}

fn build(ui: &Path) -> Result<(), String> {
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    match Command::new(npm).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("npm was not found; install Node.js 20+ and rebuild".into()),
    }
    let lock = mtime(&ui.join("package-lock.json"));
    let installed = mtime(&ui.join("node_modules/.package-lock.json"));
    if installed.is_none() || lock > installed {
        run(ui, npm, &["ci", "--no-audit", "--no-fund", "--loglevel=error"])?;
    }
    run(ui, npm, &["run", "build"])
}

fn run(dir: &Path, npm: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(npm)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("could not run `npm {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    Err(format!(
        "`npm {}` failed: {}",
        args.join(" "),
        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
    ))
}

fn ensure_placeholder(dist: &Path, why: &str) {
    if !dist.join("index.html").exists() {
        write_placeholder(dist, why);
    }
}

fn write_placeholder(dist: &Path, why: &str) {
    let why = why.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let html = format!(
        "<!doctype html>\n<!-- {PLACEHOLDER_MARK} -->\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Vellum</title></head><body style=\"font-family:system-ui;max-width:40rem;margin:4rem auto\">\
         <h1>Vellum is running</h1><p>The admin UI was not built into this binary: {why}.</p>\
         <p>Install Node.js 20+ and rebuild (<code>cargo build</code> runs <code>npm ci</code> and \
         <code>npm run build</code> in <code>admin-ui/</code>), or build it by hand there. \
         The API is at <a href=\"/graphql\">/graphql</a> and <a href=\"/api/openapi.json\">/api</a>.</p>\
         </body></html>\n"
    );
    if let Err(e) = fs::create_dir_all(dist).and_then(|()| fs::write(dist.join("index.html"), html)) {
        println!("cargo:warning=could not write the admin UI placeholder: {e}");
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of a file or of anything under a folder.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = fs::metadata(path).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    let children = fs::read_dir(path).ok()?.flatten().filter_map(|e| newest(&e.path()));
    children.chain(own).max()
}
