//! The working context of an appending episode: instruction (system prompt + task
//! prompt) followed by records with stable ids. Implements MemAct's `prune_context`
//! (algorithms.md §1.2) and SUPO's `summarize` (§5).
//!
//! Deviation from the MemAct code, on purpose: records are matched to `delete_ids` by
//! exact id, not by substring of their content (substring matching lets `r1` delete `r12`).

use crate::ids::{IdGen, IdStyle};
use crate::message::{ChatMessage, Role};
use crate::tokens::TokenCounter;
use std::collections::HashSet;
use std::ops::Range;

/// A piece of an assistant message: free text, or one `<tool_call>` block.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A call block; `response` is the id of its tool-response record once pushed.
    Call {
        text: String,
        response: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    User(String),
    Assistant(Vec<Part>),
    Tool(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    /// Tool and user records carry an id; assistant records are addressed through the
    /// ids of their calls' responses.
    id: Option<String>,
    /// Internal serial number, stable across prunes (for handles).
    serial: u64,
    body: Body,
}

/// Handle to an assistant record pushed this turn, for linking its tool responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssistantHandle {
    serial: u64,
}

/// Result of a successful prune.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PruneOutcome {
    /// Records removed (tool/user records and whole assistant messages).
    pub removed_records: usize,
    /// Listed ids that matched nothing.
    pub unknown_ids: Vec<String>,
}

/// Why a prune failed (context unchanged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PruneError {
    /// `memory` was empty.
    #[error("prune_context needs a non-empty memory note")]
    EmptyMemory,
    /// `delete_ids` was empty.
    #[error("prune_context needs at least one id in delete_ids")]
    NoIds,
}

/// Instruction plus id-addressed records.
#[derive(Debug, Clone)]
pub struct WorkingContext {
    system: String,
    prompt: String,
    records: Vec<Record>,
    ids: IdGen,
    serial: u64,
}

impl WorkingContext {
    /// A context holding only the instruction; record ids come from `seed`.
    pub fn new(system: String, prompt: String, style: IdStyle, seed: u64) -> Self {
        Self { system, prompt, records: Vec::new(), ids: IdGen::new('r', style, seed), serial: 0 }
    }

    /// Allocates a fresh record id without pushing a record.
    pub fn next_id(&mut self) -> String {
        self.ids.next_id()
    }

    /// Appends a user record; `render` receives the new id and returns the content.
    pub fn push_user(&mut self, render: impl FnOnce(&str) -> String) -> String {
        let id = self.ids.next_id();
        let serial = self.bump();
        self.records.push(Record { body: Body::User(render(&id)), id: Some(id.clone()), serial });
        id
    }

    fn bump(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Appends the policy's completion, split into text and the call blocks at `spans`
    /// (sorted, non-overlapping byte ranges of `completion`).
    pub fn push_assistant(&mut self, completion: &str, spans: &[Range<usize>]) -> AssistantHandle {
        let mut parts = Vec::new();
        let mut pos = 0;
        for s in spans {
            if s.start > pos {
                parts.push(Part::Text(completion[pos..s.start].to_string()));
            }
            parts.push(Part::Call { text: completion[s.clone()].to_string(), response: None });
            pos = s.end;
        }
        if pos < completion.len() {
            parts.push(Part::Text(completion[pos..].to_string()));
        }
        let serial = self.bump();
        self.records.push(Record { id: None, body: Body::Assistant(parts), serial });
        AssistantHandle { serial }
    }

    /// Appends the tool response to call number `call` of the assistant record `h`;
    /// `render` receives the new record id. Returns the id.
    pub fn push_tool(&mut self, h: AssistantHandle, call: usize, render: impl FnOnce(&str) -> String) -> String {
        let id = self.ids.next_id();
        let serial = self.bump();
        if let Some(Record { body: Body::Assistant(parts), .. }) = self.records.iter_mut().find(|r| r.serial == h.serial)
            && let Some(Part::Call { response, .. }) = parts.iter_mut().filter(|p| matches!(p, Part::Call { .. })).nth(call)
        {
            *response = Some(id.clone());
        }
        self.records.push(Record { body: Body::Tool(render(&id)), id: Some(id.clone()), serial });
        id
    }

    /// MemAct's prune: removes the records whose ids are listed, cuts the matching call
    /// blocks out of assistant messages, and removes an assistant message whole when all
    /// of its calls are gone. The note itself lives on inside the prune call, whose
    /// response record (pushed by the caller afterwards) can be pruned later in turn.
    pub fn prune(&mut self, memory: &str, delete_ids: &[String]) -> Result<PruneOutcome, PruneError> {
        if memory.trim().is_empty() {
            return Err(PruneError::EmptyMemory);
        }
        if delete_ids.is_empty() {
            return Err(PruneError::NoIds);
        }
        let wanted: HashSet<&str> = delete_ids.iter().map(String::as_str).collect();
        let present: HashSet<&str> = self.records.iter().filter_map(|r| r.id.as_deref()).collect();
        let mut unknown: Vec<String> = delete_ids.iter().filter(|id| !present.contains(id.as_str())).cloned().collect();
        unknown.dedup();
        let before = self.records.len();
        let doomed: HashSet<String> = wanted.iter().filter(|id| present.contains(*id)).map(|s| s.to_string()).collect();
        self.records.retain_mut(|r| {
            if r.id.as_deref().is_some_and(|id| doomed.contains(id)) {
                return false;
            }
            if let Body::Assistant(parts) = &mut r.body {
                let calls_before = parts.iter().filter(|p| matches!(p, Part::Call { .. })).count();
                parts.retain(|p| !matches!(p, Part::Call { response: Some(id), .. } if doomed.contains(id)));
                let calls_after = parts.iter().filter(|p| matches!(p, Part::Call { .. })).count();
                if calls_before > 0 && calls_after == 0 {
                    return false;
                }
            }
            true
        });
        Ok(PruneOutcome { removed_records: before - self.records.len(), unknown_ids: unknown })
    }

    /// SUPO's reset: keeps only the instruction and the assistant message `h` (the one
    /// that wrote the summary). Records pushed after `h` are dropped too.
    pub fn summarize(&mut self, h: AssistantHandle) {
        let keep = self.records.iter().find(|r| r.serial == h.serial).cloned();
        self.records.clear();
        if let Some(mut r) = keep {
            // Its earlier calls' responses are gone: unlink them so ids do not dangle.
            if let Body::Assistant(parts) = &mut r.body {
                for p in parts.iter_mut() {
                    if let Part::Call { response, .. } = p {
                        *response = None;
                    }
                }
            }
            self.records.push(r);
        }
    }

    /// Ids of records that can be pruned, in order.
    pub fn record_ids(&self) -> Vec<String> {
        self.records.iter().filter_map(|r| r.id.clone()).collect()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when only the instruction is present.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The whole context as chat messages: system, task prompt, then records.
    pub fn messages(&self) -> Vec<ChatMessage> {
        let mut out = Vec::with_capacity(self.records.len() + 2);
        out.push(ChatMessage::new(Role::System, self.system.clone()));
        out.push(ChatMessage::new(Role::User, self.prompt.clone()));
        for r in &self.records {
            let (role, content) = match &r.body {
                Body::User(c) => (Role::User, c.clone()),
                Body::Tool(c) => (Role::Tool, c.clone()),
                Body::Assistant(parts) => (Role::Assistant, render_parts(parts)),
            };
            out.push(ChatMessage { role, content, record_id: r.id.clone() });
        }
        out
    }

    /// Tokens of the working context after the instruction (MemAct's budget measure).
    pub fn working_tokens(&self, counter: &dyn TokenCounter) -> usize {
        self.records
            .iter()
            .map(|r| match &r.body {
                Body::User(c) | Body::Tool(c) => counter.count(c),
                Body::Assistant(parts) => counter.count(&render_parts(parts)),
            })
            .sum()
    }
}

fn render_parts(parts: &[Part]) -> String {
    parts
        .iter()
        .map(|p| match p {
            Part::Text(t) | Part::Call { text: t, .. } => t.as_str(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::WhitespaceCounter;

    const CALL_A: &str = "<tool_call>\n{\"name\":\"search\",\"arguments\":{\"query\":\"a\"}}\n</tool_call>\n";
    const CALL_B: &str = "<tool_call>\n{\"name\":\"search\",\"arguments\":{\"query\":\"b\"}}\n</tool_call>\n";

    fn spans(text: &str, calls: &[&str]) -> Vec<Range<usize>> {
        calls
            .iter()
            .map(|c| {
                let s = text.find(c).unwrap();
                s..s + c.len()
            })
            .collect()
    }

    /// ctx: [assistant("think" + A + B), tool r1 (A), tool r2 (B)]
    fn ctx_with_two_calls() -> WorkingContext {
        let mut ctx = WorkingContext::new("sys".into(), "task".into(), IdStyle::Sequential, 0);
        let text = format!("think\n{CALL_A}{CALL_B}");
        let h = ctx.push_assistant(&text, &spans(&text, &[CALL_A, CALL_B]));
        assert_eq!(ctx.push_tool(h, 0, |id| format!("[{id}] result a")), "r1");
        assert_eq!(ctx.push_tool(h, 1, |id| format!("[{id}] result b")), "r2");
        ctx
    }

    #[test]
    fn prune_one_call_cuts_it_out_of_the_assistant_message() {
        let mut ctx = ctx_with_two_calls();
        let out = ctx.prune("note", &["r1".into(), "r9".into()]).unwrap();
        assert_eq!(out, PruneOutcome { removed_records: 1, unknown_ids: vec!["r9".into()] });
        let m = ctx.messages();
        assert_eq!(m.len(), 4);
        assert_eq!(m[2].content, format!("think\n{CALL_B}"));
        assert_eq!(m[3].content, "[r2] result b");
    }

    #[test]
    fn prune_all_calls_removes_the_whole_message_with_its_reasoning() {
        let mut ctx = ctx_with_two_calls();
        ctx.prune("note", &["r1".into(), "r2".into()]).unwrap();
        assert_eq!(ctx.messages().len(), 2);
        assert!(ctx.is_empty());
    }

    #[test]
    fn prune_note_survives_and_can_be_pruned_later() {
        let mut ctx = ctx_with_two_calls();
        let prune_call = "<tool_call>\n{\"name\":\"prune_context\",\"arguments\":{\"memory\":\"A=1\",\"delete_ids\":[\"r1\",\"r2\"]}}\n</tool_call>\n";
        let h = ctx.push_assistant(prune_call, &spans(prune_call, &[prune_call]));
        ctx.prune("A=1", &["r1".into(), "r2".into()]).unwrap();
        let note_id = ctx.push_tool(h, 0, |id| format!("[{id}] pruned"));
        assert_eq!(note_id, "r3");
        let m = ctx.messages();
        assert_eq!(m.len(), 4);
        assert!(m[2].content.contains("A=1"));
        // recursive: the note record can itself be removed
        ctx.prune("B", &[note_id]).unwrap();
        assert!(ctx.is_empty());
    }

    #[test]
    fn failed_prune_leaves_context_unchanged() {
        let mut ctx = ctx_with_two_calls();
        let before = ctx.messages();
        assert_eq!(ctx.prune("  ", &["r1".into()]), Err(PruneError::EmptyMemory));
        assert_eq!(ctx.prune("x", &[]), Err(PruneError::NoIds));
        assert_eq!(ctx.messages(), before);
    }

    #[test]
    fn summarize_resets_to_prompt_plus_summary_turn() {
        let mut ctx = ctx_with_two_calls();
        let call = "<tool_call>\n{\"name\":\"summarize\",\"arguments\":{\"summary\":\"S\"}}\n</tool_call>\n";
        let h = ctx.push_assistant(call, &spans(call, &[call]));
        ctx.summarize(h);
        ctx.push_tool(h, 0, |id| format!("[{id}] summarized"));
        let m = ctx.messages();
        assert_eq!(m.iter().map(|m| m.role).collect::<Vec<_>>(), vec![Role::System, Role::User, Role::Assistant, Role::Tool]);
        assert_eq!(m[3].record_id.as_deref(), Some("r3"));
        // 3 words in the call block + 2 in the response
        assert_eq!(ctx.working_tokens(&WhitespaceCounter), 3 + 2);
    }
}
