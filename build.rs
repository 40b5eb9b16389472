//! Embeds the console's page (`src/console/assets/`) in the binary: writes `$OUT_DIR/console_assets.rs`, a table
//! of every file there — name, content type, `include_bytes!` of its bytes — for `src/console.rs`.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console/assets");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<(String, &str)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|entry| {
                    let name = entry.file_name().into_string().ok()?;
                    let content_type = match name.rsplit_once('.')?.1 {
                        "html" => "text/html; charset=utf-8",
                        "css" => "text/css; charset=utf-8",
                        "js" => "text/javascript; charset=utf-8",
                        "svg" => "image/svg+xml",
                        "png" => "image/png",
                        _ => return None,
                    };
                    Some((name, content_type))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut table = String::from(
        "/// The console's files: name, content type, bytes.\npub const ASSETS: &[(&str, &str, &[u8])] = &[\n",
    );
    for (name, content_type) in &files {
        println!("cargo:rerun-if-changed={}", dir.join(name).display());
        let path = dir.join(name);
        writeln!(table, "    ({name:?}, {content_type:?}, include_bytes!({:?})),", path.display().to_string())
            .expect("writing to a String");
    }
    table.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("console_assets.rs");
    std::fs::write(out, table).expect("writing console_assets.rs");
}
