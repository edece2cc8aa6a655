//! Shared by the integration tests that need the real model: where SmolLM2 is, and its
//! transformers reference outputs. Each test file uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

/// The SmolLM2-135M-Instruct GGUF: `$MEMRL_SMOLLM2_GGUF`, else the copy scripts/fetch-model.sh
/// places under .cache/. Fails (never skips) when it is missing.
pub fn gguf_path() -> PathBuf {
    let path = match std::env::var_os("MEMRL_SMOLLM2_GGUF") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    assert!(path.is_file(), "SmolLM2 GGUF not found at {} — run scripts/fetch-model.sh or set MEMRL_SMOLLM2_GGUF", path.display());
    path
}

/// The transformers reference outputs of SmolLM2 (tests/fixtures/smollm2_reference.json).
pub fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| serde_json::from_str(include_str!("../fixtures/smollm2_reference.json")).unwrap())
}
