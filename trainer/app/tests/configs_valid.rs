//! Every shipped config in `configs/` loads (typed, unknown keys rejected) and its environment
//! options are accepted by the environment.

use std::sync::Arc;

#[test]
fn shipped_configs_load_and_build_their_environment() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let config = memrl_trainer::config::load(Some(&path), &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut knobs = serde_json::to_value(&config.env.options).unwrap();
        if config.env.name == "locomo" {
            // Tests run from the crate directory; point the data path at the shared data.
            knobs["data_path"] = serde_json::Value::String(format!("{}/../../../shared/data/locomo/locomo10.json", env!("CARGO_MANIFEST_DIR")));
        }
        memrl_envs::registry::build_env(&config.env.name, knobs, Arc::new(memrl_envs::tokens::WhitespaceCounter))
            .unwrap_or_else(|e| panic!("{}: env options: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 4, "expected the quickstart and SmolLM2 presets, found {seen}");
}
