//! Chat templates rendered with minijinja under transformers' semantics
//! (`apply_chat_template`): `trim_blocks` and `lstrip_blocks` on, loop controls, the variables
//! `messages`, `tools`, `add_generation_prompt`, `bos_token`/`eos_token`/`pad_token`/`unk_token`,
//! the `raise_exception(msg)` function, Python string methods (`.strip()`, `.startswith()`, ...
//! through minijinja-contrib's pycompat) and a `tojson` filter that prints like Python's
//! `json.dumps(ensure_ascii=False)`.
//!
//! `strftime_now` is deliberately not defined: templates that use it fall back to a fixed date,
//! which keeps rendered prompts reproducible.

use minijinja::value::{Kwargs, Value as JValue, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::Value;

use crate::error::{PolicyError, Result};

/// Special-token strings exposed to the template.
#[derive(Debug, Clone, Default)]
pub struct SpecialTokens {
    /// `bos_token`.
    pub bos_token: Option<String>,
    /// `eos_token`.
    pub eos_token: Option<String>,
    /// `pad_token`.
    pub pad_token: Option<String>,
    /// `unk_token`.
    pub unk_token: Option<String>,
}

/// A compiled chat template.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("len", &self.source.len()).finish()
    }
}

/// `raise_exception(message)`: the template's way to reject a conversation.
fn raise_exception(message: String) -> std::result::Result<JValue, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=indent)`.
fn tojson(value: JValue, kwargs: Kwargs) -> std::result::Result<JValue, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(&value, indent, 0, &mut out)?;
    Ok(JValue::from_safe_string(out))
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_json(v: &JValue, indent: Option<usize>, depth: usize, out: &mut String) -> std::result::Result<(), Error> {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    // Python's separators: (", ", ": ") without indent, (",", ": ") with.
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if let Some(i) = v.as_i64() {
                out.push_str(&i.to_string());
            } else {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                out.push_str(&python_float(f));
            }
        }
        ValueKind::String => write_json_string(v.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<JValue> = v.try_iter()?.collect();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json(item, indent, depth + 1, out)?;
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        ValueKind::Map => {
            let keys: Vec<JValue> = v.try_iter()?.collect();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json_string(&key.to_string(), out);
                out.push_str(": ");
                write_json(&v.get_item(key)?, indent, depth + 1, out)?;
            }
            if !keys.is_empty() {
                newline(out, depth);
            }
            out.push('}');
        }
        _ => write_json_string(&v.to_string(), out),
    }
    Ok(())
}

/// Python's `repr(float)` for finite values as JSON prints them.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else if f == f.trunc() && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

impl ChatTemplate {
    /// Compiles a template; a syntax error is reported with its line.
    pub fn new(source: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source.to_string()).map_err(|e| PolicyError::ChatTemplate(format!("does not compile: {e}")))?;
        Ok(ChatTemplate { env, source: source.to_string() })
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders a conversation. `messages` are HF-style message objects (`role`, `content`, and
    /// optionally `tool_calls`, `name`, ...); `tools` are JSON tool schemas.
    pub fn render(&self, messages: &[Value], tools: Option<&[Value]>, add_generation_prompt: bool, special: &SpecialTokens) -> Result<String> {
        let tmpl = self.env.get_template("chat").map_err(|e| PolicyError::ChatTemplate(e.to_string()))?;
        let ctx = minijinja::context! {
            messages => JValue::from_serialize(messages),
            tools => tools.map(JValue::from_serialize),
            add_generation_prompt => add_generation_prompt,
            bos_token => special.bos_token.clone(),
            eos_token => special.eos_token.clone(),
            pad_token => special.pad_token.clone(),
            unk_token => special.unk_token.clone(),
        };
        tmpl.render(ctx).map_err(|e| {
            if e.kind() == ErrorKind::InvalidOperation {
                PolicyError::ChatTemplate(format!("the template raised: {}", e.detail().unwrap_or("")))
            } else {
                PolicyError::ChatTemplate(format!("render failed: {e}"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, messages: Value, generation_prompt: bool) -> Result<String> {
        let msgs: Vec<Value> = messages.as_array().unwrap().clone();
        ChatTemplate::new(t)?.render(&msgs, None, generation_prompt, &SpecialTokens { bos_token: Some("<s>".into()), ..Default::default() })
    }

    #[test]
    fn trims_blocks_like_transformers() {
        let t = "{% for m in messages %}\n  {% if m.role == 'user' %}\n[{{ m.content }}]\n  {% endif %}\n{% endfor %}";
        assert_eq!(render(t, json!([{"role": "user", "content": "hi"}]), false).unwrap(), "[hi]\n");
    }

    #[test]
    fn python_string_methods_and_special_tokens() {
        let t = "{{ bos_token }}{{ messages[0].content.strip() }}{% if messages[0].content.startswith(' a') %}!{% endif %}";
        assert_eq!(render(t, json!([{"role": "user", "content": " a b "}]), false).unwrap(), "<s>a b!");
    }

    #[test]
    fn raise_exception_is_an_error_with_the_message() {
        let t = "{% if messages[0].role != 'system' %}{{ raise_exception('first must be system') }}{% endif %}";
        let e = render(t, json!([{"role": "user", "content": "x"}]), false).unwrap_err().to_string();
        assert!(e.contains("first must be system"), "{e}");
    }

    #[test]
    fn tojson_prints_like_python() {
        let t = "{{ messages[0] | tojson }}|{{ messages[0].content | tojson(indent=2) }}";
        let out = render(t, json!([{"role": "user", "content": "é \"q\"\n"}]), false).unwrap();
        assert_eq!(out, "{\"content\": \"é \\\"q\\\"\\n\", \"role\": \"user\"}|\"é \\\"q\\\"\\n\"");
    }

    #[test]
    fn loop_controls_and_generation_prompt() {
        let t = "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}>{% endif %}";
        assert_eq!(render(t, json!([{"role": "u", "content": "a"}, {"role": "u", "content": "b"}]), true).unwrap(), "a>");
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(ChatTemplate::new("{% for x in %}").unwrap_err().to_string().contains("compile"));
    }
}
