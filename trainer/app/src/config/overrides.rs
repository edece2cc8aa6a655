//! `--set a.b=c` overrides, applied to the parsed TOML tree before it is typed.
//!
//! The value is parsed as a TOML literal (`7`, `2e-6`, `true`, `[0.9, 0.95]`, `"x"`); if that
//! fails, or the key's default is a string and the value is not a quoted TOML string, the raw
//! text is used as a string. A key must exist in
//! the default configuration (so typos are caught even for keys the file does not mention),
//! except below free-form tables such as `env.options`.

use super::ConfigError;

/// Tables whose contents are not typed here (their owner validates them).
const FREE_FORM_TABLES: &[&[&str]] = &[&["env", "options"]];

/// One parsed `--set` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The argument as given, for error messages.
    pub arg: String,
    /// The dotted key, split.
    pub path: Vec<String>,
    /// The raw text after `=`.
    pub raw: String,
}

/// Parses `a.b.c=value`.
pub fn parse_override(arg: &str) -> Result<Override, ConfigError> {
    let bad = |reason: &str| ConfigError::BadOverride { arg: arg.to_string(), reason: reason.to_string() };
    let (key, raw) = arg.split_once('=').ok_or_else(|| bad("expected KEY=VALUE, e.g. trainer.lr=2e-6"))?;
    let key = key.trim();
    let path: Vec<String> = key.split('.').map(str::to_string).collect();
    if key.is_empty() || path.iter().any(|p| p.is_empty()) {
        return Err(bad("the key must be a dotted path like trainer.lr"));
    }
    Ok(Override { arg: arg.to_string(), path, raw: raw.trim().to_string() })
}

/// Parses a value as a TOML literal, falling back to the raw string.
fn parse_literal(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Looks `path` up in the defaults tree. Returns the default value when the key is known,
/// `Ok(None)` when it lies inside a free-form table, and an error naming the unknown key.
fn default_at<'a>(defaults: &'a toml::Value, o: &Override) -> Result<Option<&'a toml::Value>, ConfigError> {
    let mut node = defaults;
    for (depth, part) in o.path.iter().enumerate() {
        if FREE_FORM_TABLES.iter().any(|t| t.len() == depth && t.iter().zip(&o.path).all(|(a, b)| a == b)) {
            return Ok(None);
        }
        let here = o.path[..depth].join(".");
        match node {
            toml::Value::Table(t) => match t.get(part) {
                Some(child) => node = child,
                None => {
                    let mut known: Vec<&str> = t.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    let within = if here.is_empty() { "top level".to_string() } else { format!("[{here}]") };
                    return Err(ConfigError::UnknownKey {
                        arg: o.arg.clone(),
                        key: o.path[..=depth].join("."),
                        known: format!("{within} has: {}", known.join(", ")),
                    });
                }
            },
            _ => {
                return Err(ConfigError::BadOverride { arg: o.arg.clone(), reason: format!("`{here}` is a value, not a table") });
            }
        }
    }
    Ok(Some(node))
}

/// Applies one override to `root`, checking the key against `defaults`.
pub fn apply_override(root: &mut toml::Table, defaults: &toml::Value, o: &Override) -> Result<(), ConfigError> {
    let default = default_at(defaults, o)?;
    let value = match default {
        // A string key takes a TOML string literal (`"x"`, `'x'`) as its content, anything
        // else as the raw text (`run.dir=runs/x`, `trainer.lr` style numbers stay text).
        Some(toml::Value::String(_)) => match parse_literal(&o.raw) {
            string @ toml::Value::String(_) => string,
            _ => toml::Value::String(o.raw.clone()),
        },
        _ => parse_literal(&o.raw),
    };
    let (leaf, parents) = o.path.split_last().expect("parse_override rejects empty paths");
    let mut table = root;
    for (depth, part) in parents.iter().enumerate() {
        let entry = table.entry(part.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::BadOverride {
                    arg: o.arg.clone(),
                    reason: format!("`{}` is a value in the config file, not a table", o.path[..=depth].join(".")),
                });
            }
        };
    }
    table.insert(leaf.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_fallback_strings() {
        assert_eq!(parse_literal("7"), toml::Value::Integer(7));
        assert_eq!(parse_literal("2e-6"), toml::Value::Float(2e-6));
        assert_eq!(parse_literal("true"), toml::Value::Boolean(true));
        assert_eq!(parse_literal("cuda:0"), toml::Value::String("cuda:0".into()));
        assert_eq!(parse_literal("\"quoted\""), toml::Value::String("quoted".into()));
        assert!(matches!(parse_literal("[0.9, 0.95]"), toml::Value::Array(a) if a.len() == 2));
    }

    #[test]
    fn a_string_key_takes_quoted_or_bare_text() {
        let defaults = toml::Value::try_from(crate::config::Config::default()).unwrap();
        for (arg, expected) in [("run.dir=\"x\"", "x"), ("run.dir='runs/y'", "runs/y"), ("run.dir=runs/z", "runs/z"), ("run.dir=7", "7")] {
            let mut root = toml::Table::new();
            apply_override(&mut root, &defaults, &parse_override(arg).unwrap()).unwrap();
            assert_eq!(root["run"]["dir"].as_str(), Some(expected), "{arg}");
        }
    }

    #[test]
    fn malformed_arguments() {
        assert!(matches!(parse_override("trainer.lr"), Err(ConfigError::BadOverride { .. })));
        assert!(matches!(parse_override("trainer..lr=1"), Err(ConfigError::BadOverride { .. })));
        assert!(matches!(parse_override("=1"), Err(ConfigError::BadOverride { .. })));
        let o = parse_override(" trainer.lr = 2e-6 ").unwrap();
        assert_eq!((o.path.clone(), o.raw.as_str()), (vec!["trainer".to_string(), "lr".to_string()], "2e-6"));
    }
}
