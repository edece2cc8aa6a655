//! Syntax of Hermes / Qwen tool calls: `<tool_call>{"name": …, "arguments": {…}}</tool_call>`.
//! Text around calls is tolerated (it is the policy's reasoning); the JSON inside a call
//! is parsed strictly. Bounded: input size, number of calls and JSON nesting are capped
//! before anything is allocated for them, and nothing here panics on any input.

use serde_json::{Map, Value};
use std::ops::Range;

/// Opening tag.
pub const OPEN: &str = "<tool_call>";
/// Closing tag.
pub const CLOSE: &str = "</tool_call>";

/// Caps applied while parsing a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Completions longer than this (bytes) are rejected whole.
    pub max_bytes: usize,
    /// Calls beyond this many are rejected.
    pub max_calls: usize,
    /// Maximum nesting of JSON arrays/objects inside one call.
    pub max_depth: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self { max_bytes: 64 * 1024, max_calls: 64, max_depth: 16 }
    }
}

/// A syntactically valid call, before its arguments are checked against a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Tool name.
    pub name: String,
    /// Argument object.
    pub arguments: Map<String, Value>,
}

/// Why a call (or the whole completion) could not be used. Messages are written for the
/// policy to read in its error observation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The completion exceeds [`ParseLimits::max_bytes`].
    #[error("completion too long ({len} bytes > {max}); no tool call was executed")]
    TooLong {
        /// Length in bytes.
        len: usize,
        /// Cap.
        max: usize,
    },
    /// More calls than [`ParseLimits::max_calls`].
    #[error("too many tool calls in one turn (at most {0}); the rest were ignored")]
    TooManyCalls(usize),
    /// `<tool_call>` never closed and the rest is not a valid call.
    #[error("<tool_call> is not closed with </tool_call>")]
    Unclosed,
    /// Nesting deeper than [`ParseLimits::max_depth`].
    #[error("tool call JSON is nested deeper than {0} levels")]
    TooDeep(usize),
    /// Not JSON.
    #[error("tool call is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON but not `{"name": string, "arguments": object}`.
    #[error("tool call must be {{\"name\": string, \"arguments\": object}}: {0}")]
    BadShape(String),
    /// Name not among the tools offered this turn.
    #[error("unknown tool {name:?}; available: {available}")]
    UnknownTool {
        /// The name used.
        name: String,
        /// Comma-separated list of offered tools.
        available: String,
    },
    /// A required argument is missing.
    #[error("{tool}: missing required argument {arg:?}")]
    MissingArgument {
        /// Tool.
        tool: String,
        /// Argument.
        arg: String,
    },
    /// An argument the tool does not take.
    #[error("{tool}: unknown argument {arg:?} (expected: {expected})")]
    UnknownArgument {
        /// Tool.
        tool: String,
        /// Argument.
        arg: String,
        /// Comma-separated list of parameters.
        expected: String,
    },
    /// An argument of the wrong type or out of range.
    #[error("{tool}: argument {arg:?} must be {expected}")]
    BadArgument {
        /// Tool.
        tool: String,
        /// Argument.
        arg: String,
        /// What was expected.
        expected: String,
    },
}

/// One `<tool_call>` block found in a completion.
#[derive(Debug, Clone, PartialEq)]
pub struct RawCall {
    /// Byte span of the block in the completion, tags included, plus one trailing newline.
    pub span: Range<usize>,
    /// The call, or why it is unusable.
    pub result: Result<ToolCall, CallError>,
}

/// All blocks of a completion, in order, plus a completion-level error if any.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedCompletion {
    /// Blocks in order of appearance.
    pub calls: Vec<RawCall>,
    /// Set when the completion was too long or had too many calls.
    pub overflow: Option<CallError>,
}

/// Finds and parses every `<tool_call>` block in `text`.
pub fn parse_completion(text: &str, limits: ParseLimits) -> ParsedCompletion {
    let mut out = ParsedCompletion::default();
    if text.len() > limits.max_bytes {
        out.overflow = Some(CallError::TooLong { len: text.len(), max: limits.max_bytes });
        return out;
    }
    let mut pos = 0;
    while let Some(rel) = text[pos..].find(OPEN) {
        let start = pos + rel;
        if out.calls.len() >= limits.max_calls {
            out.overflow = Some(CallError::TooManyCalls(limits.max_calls));
            break;
        }
        let body_start = start + OPEN.len();
        let (body, mut end, closed) = match text[body_start..].find(CLOSE) {
            Some(r) => (&text[body_start..body_start + r], body_start + r + CLOSE.len(), true),
            None => (&text[body_start..], text.len(), false),
        };
        if text[end..].starts_with('\n') {
            end += 1;
        }
        let result = match parse_call_json(body.trim(), limits.max_depth) {
            Err(_) if !closed => Err(CallError::Unclosed),
            r => r,
        };
        out.calls.push(RawCall { span: start..end, result });
        pos = end;
    }
    out
}

/// Maximum nesting depth of `[`/`{` outside JSON strings; stops counting past `cap`.
fn json_depth_exceeds(body: &str, cap: usize) -> bool {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for b in body.bytes() {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > cap {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parses the JSON body of one call into a [`ToolCall`].
pub fn parse_call_json(body: &str, max_depth: usize) -> Result<ToolCall, CallError> {
    if json_depth_exceeds(body, max_depth) {
        return Err(CallError::TooDeep(max_depth));
    }
    let value: Value = serde_json::from_str(body).map_err(|e| CallError::InvalidJson(e.to_string()))?;
    let Value::Object(mut obj) = value else {
        return Err(CallError::BadShape("not a JSON object".into()));
    };
    if let Some(extra) = obj.keys().find(|k| *k != "name" && *k != "arguments") {
        return Err(CallError::BadShape(format!("unexpected field {extra:?}")));
    }
    let name = match obj.remove("name") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(CallError::BadShape("\"name\" is not a string".into())),
        None => return Err(CallError::BadShape("missing \"name\"".into())),
    };
    let arguments = match obj.remove("arguments") {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(CallError::BadShape("\"arguments\" is not an object".into())),
        None => return Err(CallError::BadShape("missing \"arguments\"".into())),
    };
    Ok(ToolCall { name, arguments })
}

/// Renders a call the way Qwen's chat template writes assistant tool calls.
pub fn render_call(name: &str, arguments: &Value) -> String {
    let call = serde_json::json!({"name": name, "arguments": arguments});
    format!("{OPEN}\n{call}\n{CLOSE}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<ToolCall, CallError> {
        let p = parse_completion(text, ParseLimits::default());
        assert_eq!(p.calls.len(), 1, "{p:?}");
        p.calls[0].result.clone()
    }

    #[test]
    fn parses_calls_with_text_around() {
        let t = "thinking...\n<tool_call>\n{\"name\": \"noop\", \"arguments\": {}}\n</tool_call>\nmore<tool_call>{\"name\":\"a\",\"arguments\":{\"x\":1}}</tool_call>";
        let p = parse_completion(t, ParseLimits::default());
        assert_eq!(p.calls.len(), 2);
        assert_eq!(p.calls[0].result.as_ref().unwrap().name, "noop");
        assert_eq!(&t[p.calls[0].span.clone()], "<tool_call>\n{\"name\": \"noop\", \"arguments\": {}}\n</tool_call>\n");
        assert_eq!(p.calls[1].result.as_ref().unwrap().arguments["x"], 1);
        assert!(p.overflow.is_none());
    }

    #[test]
    fn strict_shape() {
        assert!(matches!(one("<tool_call>[1]</tool_call>"), Err(CallError::BadShape(_))));
        assert!(matches!(one("<tool_call>{\"name\":\"a\"}</tool_call>"), Err(CallError::BadShape(_))));
        assert!(matches!(one("<tool_call>{\"name\":\"a\",\"arguments\":\"{}\"}</tool_call>"), Err(CallError::BadShape(_))));
        assert!(matches!(one("<tool_call>{\"name\":\"a\",\"arguments\":{},\"x\":1}</tool_call>"), Err(CallError::BadShape(_))));
        assert!(matches!(one("<tool_call>{\"name\":1,\"arguments\":{}}</tool_call>"), Err(CallError::BadShape(_))));
        assert!(matches!(one("<tool_call>{nope</tool_call>"), Err(CallError::InvalidJson(_))));
    }

    #[test]
    fn unclosed_tolerated_only_when_valid() {
        assert_eq!(one("<tool_call>{\"name\":\"a\",\"arguments\":{}}").unwrap().name, "a");
        assert_eq!(one("<tool_call>{\"name\":\"a\",\"arg"), Err(CallError::Unclosed));
    }

    #[test]
    fn limits() {
        let l = ParseLimits { max_bytes: 100, max_calls: 2, max_depth: 3 };
        let p = parse_completion(&"x".repeat(101), l);
        assert!(matches!(p.overflow, Some(CallError::TooLong { .. })));
        let c = "<tool_call>{\"name\":\"a\",\"arguments\":{}}</tool_call>";
        let p = parse_completion(&c.repeat(2), l);
        assert_eq!((p.calls.len(), p.overflow.clone()), (2, None));
        let p = parse_completion(&[c, c, c].concat()[..], ParseLimits { max_bytes: 1000, ..l });
        assert_eq!((p.calls.len(), p.overflow), (2, Some(CallError::TooManyCalls(2))));
        let deep = format!("<tool_call>{{\"name\":\"a\",\"arguments\":{{\"x\":{}1{}}}}}</tool_call>", "[".repeat(5), "]".repeat(5));
        assert_eq!(parse_completion(&deep, l).calls[0].result, Err(CallError::TooDeep(3)));
        let brackets_in_string = "<tool_call>{\"name\":\"a\",\"arguments\":{\"x\":\"[[[[[[\\\"\"}}</tool_call>";
        assert!(parse_completion(brackets_in_string, l).calls[0].result.is_ok());
    }

    #[test]
    fn render_round_trips() {
        let r = render_call("memory_add", &serde_json::json!({"content": "a \"quoted\" </b>"}));
        let c = one(&r).unwrap();
        assert_eq!(c.arguments["content"], "a \"quoted\" </b>");
    }
}
