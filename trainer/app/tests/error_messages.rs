//! The class of error messages that print the OS error twice (issue 18): a `thiserror` variant
//! whose message embeds its source (`{source}`, or `{0}` on a `#[from]` / `#[source]` field)
//! while also returning it from `source()`, so the binary's chain prints it a second time.
//! Every such message must name the path and the action only.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `#[error(...)]` attributes of `text` that embed their source, as `line: attribute`.
fn embedding_sources(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let attr = line.trim();
        if !attr.starts_with("#[error(") {
            continue;
        }
        if attr.contains("{source}") {
            found.push(format!("{}: {attr}", i + 1));
            continue;
        }
        // `{0}` is the source when the tuple field it names is `#[from]` or `#[source]`.
        let field = lines[i + 1..].iter().map(|l| l.trim()).find(|l| !l.starts_with("#[") && !l.starts_with("///"));
        if attr.contains("{0}") && field.is_some_and(|f| f.contains("#[from]") || f.contains("#[source]")) {
            found.push(format!("{}: {attr}", i + 1));
        }
    }
    found
}

#[test]
fn the_scan_finds_the_pattern() {
    let text = "enum E {\n    #[error(\"read {path}: {source}\")]\n    Io { path: String, source: std::io::Error },\n    \
                #[error(\"env: {0}\")]\n    Env(#[from] EnvError),\n    #[error(\"{0}\")]\n    Data(String),\n    \
                #[error(\"reading {path}\")]\n    Ok { path: String, source: std::io::Error },\n}\n";
    assert_eq!(embedding_sources(text), ["2: #[error(\"read {path}: {source}\")]", "4: #[error(\"env: {0}\")]"]);
}

#[test]
fn no_error_message_embeds_its_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for krate in ["datasets", "envs", "policies", "trainer/core", "trainer/app"] {
        rust_files(&root.join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 50, "found only {} source files under {}", files.len(), root.display());
    let mut offenders = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        offenders.extend(embedding_sources(&text).into_iter().map(|hit| format!("{}:{hit}", file.display())));
    }
    assert!(offenders.is_empty(), "error messages that print their source twice:\n{}", offenders.join("\n"));
}
