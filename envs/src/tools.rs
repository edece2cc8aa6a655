//! The tool catalogue: JSON function schemas for chat templates, a plain-text rendering
//! for templates without tool support, strict argument validation, and typed [`Action`]s.

use crate::toolcall::{CallError, ParseLimits, ToolCall, parse_completion};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::ops::Range;
use std::sync::Arc;

/// Longest string argument accepted, in bytes (MemAct truncates tool text at 8,192 chars).
pub const MAX_STRING_BYTES: usize = 8192;
/// Most ids one `prune_context` call may list.
pub const MAX_DELETE_IDS: usize = 64;

/// Every tool an environment can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// `memory_add(content)`.
    MemoryAdd,
    /// `memory_update(id, content)`.
    MemoryUpdate,
    /// `memory_delete(id)`.
    MemoryDelete,
    /// `noop()`.
    Noop,
    /// `memory_search(query, k)`.
    MemorySearch,
    /// `search(query, k)` over a corpus.
    Search,
    /// `prune_context(memory, delete_ids)` (MemAct).
    PruneContext,
    /// `summarize(summary)` (SUPO).
    Summarize,
    /// `answer(question_id, text)`.
    Answer,
}

/// A validated action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "tool", rename_all = "snake_case")]
pub enum Action {
    /// Add a memory entry.
    MemoryAdd {
        /// Text.
        content: String,
    },
    /// Replace a memory entry's text.
    MemoryUpdate {
        /// Entry id.
        id: String,
        /// New text.
        content: String,
    },
    /// Delete a memory entry.
    MemoryDelete {
        /// Entry id.
        id: String,
    },
    /// Do nothing.
    Noop,
    /// Search the memory bank.
    MemorySearch {
        /// Query.
        query: String,
        /// Results wanted.
        k: usize,
    },
    /// Search the corpus.
    Search {
        /// Query.
        query: String,
        /// Results wanted.
        k: usize,
    },
    /// Drop context records by id and keep a note.
    PruneContext {
        /// The note that survives.
        memory: String,
        /// Record ids to remove.
        delete_ids: Vec<String>,
    },
    /// Reset the context to the task prompt plus this summary.
    Summarize {
        /// Summary text.
        summary: String,
    },
    /// Answer one question.
    Answer {
        /// Question id (`q1`).
        question_id: String,
        /// Answer text.
        text: String,
    },
}

impl Action {
    /// The tool this action calls.
    pub fn kind(&self) -> ToolKind {
        match self {
            Action::MemoryAdd { .. } => ToolKind::MemoryAdd,
            Action::MemoryUpdate { .. } => ToolKind::MemoryUpdate,
            Action::MemoryDelete { .. } => ToolKind::MemoryDelete,
            Action::Noop => ToolKind::Noop,
            Action::MemorySearch { .. } => ToolKind::MemorySearch,
            Action::Search { .. } => ToolKind::Search,
            Action::PruneContext { .. } => ToolKind::PruneContext,
            Action::Summarize { .. } => ToolKind::Summarize,
            Action::Answer { .. } => ToolKind::Answer,
        }
    }

    /// The exact tool-call text for this action (what oracle policies emit).
    pub fn to_call_text(&self) -> String {
        let args = match self {
            Action::MemoryAdd { content } => json!({"content": content}),
            Action::MemoryUpdate { id, content } => json!({"id": id, "content": content}),
            Action::MemoryDelete { id } => json!({"id": id}),
            Action::Noop => json!({}),
            Action::MemorySearch { query, k } | Action::Search { query, k } => json!({"query": query, "k": k}),
            Action::PruneContext { memory, delete_ids } => json!({"memory": memory, "delete_ids": delete_ids}),
            Action::Summarize { summary } => json!({"summary": summary}),
            Action::Answer { question_id, text } => json!({"question_id": question_id, "text": text}),
        };
        crate::toolcall::render_call(self.kind().name(), &args)
    }
}

#[derive(Debug, Clone, Copy)]
enum ParamType {
    Str,
    Int { min: i64, max: i64 },
    StrList { max_items: usize },
}

#[derive(Debug, Clone, Copy)]
struct Param {
    name: &'static str,
    ty: ParamType,
    required: bool,
    description: &'static str,
}

const fn p(name: &'static str, ty: ParamType, required: bool, description: &'static str) -> Param {
    Param { name, ty, required, description }
}

impl ToolKind {
    /// The tool's name in calls.
    pub fn name(self) -> &'static str {
        match self {
            ToolKind::MemoryAdd => "memory_add",
            ToolKind::MemoryUpdate => "memory_update",
            ToolKind::MemoryDelete => "memory_delete",
            ToolKind::Noop => "noop",
            ToolKind::MemorySearch => "memory_search",
            ToolKind::Search => "search",
            ToolKind::PruneContext => "prune_context",
            ToolKind::Summarize => "summarize",
            ToolKind::Answer => "answer",
        }
    }

    fn description(self) -> &'static str {
        match self {
            ToolKind::MemoryAdd => "Store a new fact in the memory bank. Returns the new entry's id.",
            ToolKind::MemoryUpdate => "Replace the text of an existing memory entry, addressed by its id.",
            ToolKind::MemoryDelete => "Delete a memory entry that is wrong or no longer needed, by its id.",
            ToolKind::Noop => "Leave the memory bank unchanged.",
            ToolKind::MemorySearch => "Search the memory bank (BM25) and return the best matching entries.",
            ToolKind::Search => "Search the document collection (BM25) and return the best matching documents.",
            ToolKind::PruneContext => {
                "Free working context: write the key facts to keep in `memory`, then list the record ids to delete from the context. The note stays in the context and can itself be deleted later."
            }
            ToolKind::Summarize => "Replace the whole working context with the task prompt plus this summary. Put everything you still need in it.",
            ToolKind::Answer => "Give the final answer to one question, addressed by its id. Each question can be answered once.",
        }
    }

    fn params(self) -> &'static [Param] {
        const K: ParamType = ParamType::Int { min: 1, max: 20 };
        match self {
            ToolKind::MemoryAdd => const { &[p("content", ParamType::Str, true, "the fact to store")] },
            ToolKind::MemoryUpdate => {
                const { &[p("id", ParamType::Str, true, "id of the entry to change"), p("content", ParamType::Str, true, "the new text")] }
            }
            ToolKind::MemoryDelete => const { &[p("id", ParamType::Str, true, "id of the entry to delete")] },
            ToolKind::Noop => const { &[] },
            ToolKind::MemorySearch | ToolKind::Search => {
                const { &[p("query", ParamType::Str, true, "search terms"), p("k", K, false, "number of results, 1 to 20 (default 3)")] }
            }
            ToolKind::PruneContext => {
                const {
                    &[
                        p("memory", ParamType::Str, true, "what to remember from the records being deleted"),
                        p("delete_ids", ParamType::StrList { max_items: MAX_DELETE_IDS }, true, "ids of the context records to delete"),
                    ]
                }
            }
            ToolKind::Summarize => const { &[p("summary", ParamType::Str, true, "everything worth keeping so far")] },
            ToolKind::Answer => {
                const { &[p("question_id", ParamType::Str, true, "id of the question, e.g. q1"), p("text", ParamType::Str, true, "a short answer")] }
            }
        }
    }

    /// The OpenAI/Qwen function schema: `{"type":"function","function":{…}}`.
    pub fn json_schema(self) -> Value {
        let mut props = Map::new();
        let mut required = Vec::new();
        for prm in self.params() {
            let schema = match prm.ty {
                ParamType::Str => json!({"type": "string", "description": prm.description}),
                ParamType::Int { min, max } => {
                    json!({"type": "integer", "minimum": min, "maximum": max, "description": prm.description})
                }
                ParamType::StrList { max_items } => {
                    json!({"type": "array", "items": {"type": "string"}, "maxItems": max_items, "description": prm.description})
                }
            };
            props.insert(prm.name.to_string(), schema);
            if prm.required {
                required.push(prm.name);
            }
        }
        json!({"type": "function", "function": {
            "name": self.name(),
            "description": self.description(),
            "parameters": {"type": "object", "properties": props, "required": required, "additionalProperties": false}
        }})
    }

    /// One line: `- name(arg: type, [opt: type]): description`.
    pub fn text_signature(self) -> String {
        let args: Vec<String> = self
            .params()
            .iter()
            .map(|prm| {
                let ty = match prm.ty {
                    ParamType::Str => "string",
                    ParamType::Int { .. } => "integer",
                    ParamType::StrList { .. } => "list of strings",
                };
                if prm.required { format!("{}: {ty}", prm.name) } else { format!("[{}: {ty}]", prm.name) }
            })
            .collect();
        format!("- {}({}): {}", self.name(), args.join(", "), self.description())
    }

    /// Checks `call.arguments` against this tool's parameters and builds the action.
    pub fn validate(self, call: &ToolCall) -> Result<Action, CallError> {
        let params = self.params();
        let tool = self.name();
        if let Some(arg) = call.arguments.keys().find(|k| !params.iter().any(|prm| prm.name == k.as_str())) {
            let expected = if params.is_empty() { "no arguments".to_string() } else { params.iter().map(|x| x.name).collect::<Vec<_>>().join(", ") };
            return Err(CallError::UnknownArgument { tool: tool.into(), arg: arg.clone(), expected });
        }
        for prm in params {
            match call.arguments.get(prm.name) {
                None if prm.required => return Err(CallError::MissingArgument { tool: tool.into(), arg: prm.name.into() }),
                None => {}
                Some(v) => check_type(tool, prm, v)?,
            }
        }
        let s = |name: &str| call.arguments.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
        let k = call.arguments.get("k").and_then(Value::as_i64).map(|k| k as usize).unwrap_or(3);
        Ok(match self {
            ToolKind::MemoryAdd => Action::MemoryAdd { content: s("content") },
            ToolKind::MemoryUpdate => Action::MemoryUpdate { id: s("id"), content: s("content") },
            ToolKind::MemoryDelete => Action::MemoryDelete { id: s("id") },
            ToolKind::Noop => Action::Noop,
            ToolKind::MemorySearch => Action::MemorySearch { query: s("query"), k },
            ToolKind::Search => Action::Search { query: s("query"), k },
            ToolKind::PruneContext => Action::PruneContext {
                memory: s("memory"),
                delete_ids: call.arguments["delete_ids"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default(),
            },
            ToolKind::Summarize => Action::Summarize { summary: s("summary") },
            ToolKind::Answer => Action::Answer { question_id: s("question_id"), text: s("text") },
        })
    }
}

fn check_type(tool: &str, prm: &Param, v: &Value) -> Result<(), CallError> {
    let bad = |expected: String| CallError::BadArgument { tool: tool.into(), arg: prm.name.into(), expected };
    match prm.ty {
        ParamType::Str => match v.as_str() {
            Some(s) if s.len() <= MAX_STRING_BYTES => Ok(()),
            _ => Err(bad(format!("a string of at most {MAX_STRING_BYTES} bytes"))),
        },
        ParamType::Int { min, max } => match v.as_i64() {
            Some(i) if (min..=max).contains(&i) => Ok(()),
            _ => Err(bad(format!("an integer from {min} to {max}"))),
        },
        ParamType::StrList { max_items } => match v.as_array() {
            Some(a) if a.len() <= max_items && a.iter().all(|x| x.as_str().is_some_and(|s| s.len() <= 256)) => Ok(()),
            _ => Err(bad(format!("a list of at most {max_items} id strings"))),
        },
    }
}

/// One parsed and validated call, with its span in the completion.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedAction {
    /// Byte span of the `<tool_call>` block in the completion.
    pub span: Range<usize>,
    /// The action or why it is invalid.
    pub result: Result<Action, CallError>,
}

/// The tools offered on one turn, pre-rendered.
#[derive(Debug, Clone)]
pub struct ToolSet {
    kinds: Vec<ToolKind>,
    json: Arc<[Value]>,
    text: Arc<str>,
    limits: ParseLimits,
}

impl ToolSet {
    /// A tool set with default parse limits.
    pub fn new(kinds: &[ToolKind]) -> Self {
        let json: Arc<[Value]> = kinds.iter().map(|k| k.json_schema()).collect();
        let mut text = String::from(
            "You can call tools. Write each call on its own as\n<tool_call>\n{\"name\": <tool name>, \"arguments\": <JSON object>}\n</tool_call>\nYou may make several calls in one reply. Tools:\n",
        );
        for k in kinds {
            text.push_str(&k.text_signature());
            text.push('\n');
        }
        Self { kinds: kinds.to_vec(), json, text: text.into(), limits: ParseLimits::default() }
    }

    /// Tools offered.
    pub fn kinds(&self) -> &[ToolKind] {
        &self.kinds
    }

    /// JSON function schemas, for a chat template's `tools` variable.
    pub fn json(&self) -> Arc<[Value]> {
        self.json.clone()
    }

    /// Plain-text rendering for templates without tool support.
    pub fn text(&self) -> Arc<str> {
        self.text.clone()
    }

    /// Parses a completion and validates each call against this set.
    pub fn parse(&self, completion: &str) -> (Vec<ParsedAction>, Option<CallError>) {
        let parsed = parse_completion(completion, self.limits);
        let actions = parsed
            .calls
            .into_iter()
            .map(|raw| ParsedAction {
                span: raw.span,
                result: raw.result.and_then(|call| {
                    let kind = self.kinds.iter().find(|k| k.name() == call.name).ok_or_else(|| CallError::UnknownTool {
                        name: call.name.chars().take(64).collect(),
                        available: self.kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "),
                    })?;
                    kind.validate(&call)
                }),
            })
            .collect();
        (actions, parsed.overflow)
    }
}

/// Every tool kind (for tests and the fuzzer).
pub const ALL_TOOLS: [ToolKind; 9] = [
    ToolKind::MemoryAdd,
    ToolKind::MemoryUpdate,
    ToolKind::MemoryDelete,
    ToolKind::Noop,
    ToolKind::MemorySearch,
    ToolKind::Search,
    ToolKind::PruneContext,
    ToolKind::Summarize,
    ToolKind::Answer,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse1(set: &ToolSet, t: &str) -> Result<Action, CallError> {
        let (a, o) = set.parse(t);
        assert!(o.is_none());
        a[0].result.clone()
    }

    #[test]
    fn every_action_round_trips_through_text() {
        let set = ToolSet::new(&ALL_TOOLS);
        let actions = vec![
            Action::MemoryAdd { content: "x \"y\"".into() },
            Action::MemoryUpdate { id: "m1".into(), content: "z".into() },
            Action::MemoryDelete { id: "m2".into() },
            Action::Noop,
            Action::MemorySearch { query: "q".into(), k: 5 },
            Action::Search { query: "q".into(), k: 20 },
            Action::PruneContext { memory: "note".into(), delete_ids: vec!["r1".into(), "r2".into()] },
            Action::Summarize { summary: "s".into() },
            Action::Answer { question_id: "q1".into(), text: "Paris".into() },
        ];
        for a in actions {
            assert_eq!(parse1(&set, &a.to_call_text()), Ok(a));
        }
    }

    #[test]
    fn strict_arguments() {
        let set = ToolSet::new(&[ToolKind::Search, ToolKind::PruneContext]);
        let call = |args: &str| parse1(&set, &format!("<tool_call>{{\"name\":\"search\",\"arguments\":{args}}}</tool_call>"));
        assert_eq!(call(r#"{"query":"a"}"#), Ok(Action::Search { query: "a".into(), k: 3 }));
        assert!(matches!(call(r#"{"query":"a","k":"3"}"#), Err(CallError::BadArgument { .. })));
        assert!(matches!(call(r#"{"query":"a","k":3.5}"#), Err(CallError::BadArgument { .. })));
        assert!(matches!(call(r#"{"query":"a","k":0}"#), Err(CallError::BadArgument { .. })));
        assert!(matches!(call(r#"{"query":"a","k":21}"#), Err(CallError::BadArgument { .. })));
        assert!(matches!(call(r#"{"query":1}"#), Err(CallError::BadArgument { .. })));
        assert!(matches!(call(r#"{}"#), Err(CallError::MissingArgument { .. })));
        assert!(matches!(call(r#"{"query":"a","topk":3}"#), Err(CallError::UnknownArgument { .. })));
        let prune = |args: &str| parse1(&set, &format!("<tool_call>{{\"name\":\"prune_context\",\"arguments\":{args}}}</tool_call>"));
        assert!(matches!(prune(r#"{"memory":"m","delete_ids":"r1"}"#), Err(CallError::BadArgument { .. })));
        assert!(matches!(prune(r#"{"memory":"m","delete_ids":[1]}"#), Err(CallError::BadArgument { .. })));
        let unknown = parse1(&set, "<tool_call>{\"name\":\"answer\",\"arguments\":{}}</tool_call>");
        assert!(matches!(unknown, Err(CallError::UnknownTool { .. })));
    }

    #[test]
    fn schemas_render() {
        let s = ToolKind::Search.json_schema();
        assert_eq!(s["function"]["name"], "search");
        assert_eq!(s["function"]["parameters"]["required"], json!(["query"]));
        assert_eq!(s["function"]["parameters"]["properties"]["k"]["type"], "integer");
        let set = ToolSet::new(&[ToolKind::Noop, ToolKind::Answer]);
        assert!(set.text().contains("- answer(question_id: string, text: string)"));
        assert!(set.text().contains("- noop(): "));
        assert_eq!(set.json().len(), 2);
    }
}
