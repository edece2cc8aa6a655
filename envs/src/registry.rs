//! Builds environments from a name and serde knobs (what a TOML `[env]` table or
//! `--set key=value` flags give), so the trainer never names a concrete env type.
//!
//! ```toml
//! [env]
//! name = "facts"
//! [env.options]
//! entities = 3
//! capacity = 6
//! ```

use crate::env::{Env, EnvError};
use crate::facts::{FactsEnv, FactsKnobs};
use crate::locomo::{LocomoEnv, LocomoKnobs};
use crate::longmemeval::{LongMemEvalEnv, LongMemEvalKnobs};
use crate::multiobjective::{MultiObjectiveEnv, MultiObjectiveKnobs};
use crate::tokens::TokenCounter;
use serde_json::Value;
use std::sync::Arc;

/// Names `build_env` accepts.
pub const ENV_NAMES: &[&str] = &["facts", "multiobjective", "locomo", "longmemeval"];

fn knobs_of<T: serde::de::DeserializeOwned + Default>(env: &str, knobs: Value) -> Result<T, EnvError> {
    if knobs.is_null() {
        return Ok(T::default());
    }
    serde_path_to_error::deserialize(knobs).map_err(|e| {
        let message = match e.path().to_string() {
            path if path == "." => e.inner().to_string(),
            path => format!("{path}: {}", e.inner()),
        };
        EnvError::Knobs { env: env.into(), message }
    })
}

/// Builds the environment `name` with `knobs`, counting tokens with `counter`.
pub fn build_env(name: &str, knobs: Value, counter: Arc<dyn TokenCounter>) -> Result<Box<dyn Env>, EnvError> {
    match name {
        "facts" => Ok(Box::new(FactsEnv::new(knobs_of::<FactsKnobs>(name, knobs)?, counter)?)),
        "multiobjective" => Ok(Box::new(MultiObjectiveEnv::new(knobs_of::<MultiObjectiveKnobs>(name, knobs)?, counter)?)),
        "locomo" => Ok(Box::new(LocomoEnv::new(knobs_of::<LocomoKnobs>(name, knobs)?, counter)?)),
        "longmemeval" => Ok(Box::new(LongMemEvalEnv::new(knobs_of::<LongMemEvalKnobs>(name, knobs)?, counter)?)),
        _ => Err(EnvError::Knobs { env: name.into(), message: format!("unknown environment (expected one of: {})", ENV_NAMES.join(", ")) }),
    }
}

/// The default knobs of `name`, as JSON (for documentation and `memrl env knobs`).
pub fn default_knobs(name: &str) -> Result<Value, EnvError> {
    let v = match name {
        "facts" => serde_json::to_value(FactsKnobs::default()),
        "multiobjective" => serde_json::to_value(MultiObjectiveKnobs::default()),
        "locomo" => serde_json::to_value(LocomoKnobs::default()),
        "longmemeval" => serde_json::to_value(LongMemEvalKnobs::default()),
        _ => return Err(EnvError::Knobs { env: name.into(), message: format!("unknown environment (expected one of: {})", ENV_NAMES.join(", ")) }),
    };
    v.map_err(|e| EnvError::Knobs { env: name.into(), message: e.to_string() })
}

/// Sets `key` (dotted for nested tables, e.g. `penalties.malformed`) to `raw`, parsed as
/// JSON when it is valid JSON (`3`, `true`, `[1,2]`, `"x"`) and taken as a string otherwise.
pub fn set_knob(knobs: &mut Value, key: &str, raw: &str) -> Result<(), EnvError> {
    let value = serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    if knobs.is_null() {
        *knobs = Value::Object(Default::default());
    }
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(EnvError::Knobs { env: String::new(), message: format!("bad knob key {key:?}") });
    }
    let mut cur = knobs;
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = cur else {
            return Err(EnvError::Knobs { env: String::new(), message: format!("knob {key:?}: {} is not a table", parts[..i].join(".")) });
        };
        if i + 1 == parts.len() {
            map.insert(part.to_string(), value);
            return Ok(());
        }
        cur = map.entry(part.to_string()).or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::WhitespaceCounter;

    #[test]
    fn builds_with_overrides_and_rejects_unknown_knobs() {
        let mut k = Value::Null;
        set_knob(&mut k, "entities", "3").unwrap();
        set_knob(&mut k, "penalties.malformed", "0.2").unwrap();
        set_knob(&mut k, "memory_mode", "overwrite").unwrap();
        assert_eq!(k["penalties"]["malformed"], 0.2);
        assert!(build_env("facts", k, Arc::new(WhitespaceCounter)).is_ok());
        let mut bad = Value::Null;
        set_knob(&mut bad, "entitees", "3").unwrap();
        let err = build_env("facts", bad, Arc::new(WhitespaceCounter)).err().unwrap().to_string();
        assert!(err.contains("entitees"), "{err}");
        assert!(build_env("nope", Value::Null, Arc::new(WhitespaceCounter)).is_err());
        assert!(default_knobs("facts").unwrap()["capacity"].is_u64());
    }
}
