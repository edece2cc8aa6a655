//! Exact token contexts for multi-turn rollouts (token-in, token-out).
//!
//! Each turn the environment hands back its whole working context as chat messages. Rendering
//! and re-tokenising it from scratch every turn would silently change the tokens the policy had
//! generated (BPE merges across message boundaries, templates that are not append-only), and
//! the learner would then train on tokens the policy never produced. Instead the tracker keeps
//! the exact ids: when the newly rendered text extends the previous context plus the completion,
//! only the appended suffix (the environment's tokens) is tokenised and appended to the previous
//! context ids and the sampled completion ids. Otherwise, after a memory edit, the context is
//! rendered and tokenised whole, and the segment recorder sees a fracture.

use memrl_envs::message::ChatMessage;
use serde_json::Value;

/// Chat template + tokenizer, as the rollout needs them. Implemented over the policy's
/// tokenizer by the trainer, and by simple fakes in tests.
pub trait ChatCodec: Send + Sync {
    /// Renders `messages` (with `tools` offered) through the chat template.
    fn render(&self, messages: &[ChatMessage], tools: &[Value], add_generation_prompt: bool) -> Result<String, CodecError>;
    /// Tokenises `text`, parsing special tokens, adding none (no BOS).
    fn encode(&self, text: &str) -> Result<Vec<u32>, CodecError>;
    /// Decodes `ids` to text, keeping special tokens.
    fn decode(&self, ids: &[u32]) -> Result<String, CodecError>;
    /// Whether the template renders the `tools` argument itself; when not, the rollout
    /// inlines the tool descriptions into the system prompt.
    fn renders_tools(&self) -> bool;
}

/// A chat template or tokenizer failure, with its message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("chat codec: {0}")]
pub struct CodecError(pub String);

/// How a turn's context was obtained from the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextStep {
    /// The first turn: rendered and tokenised whole.
    Initial,
    /// Previous context ids + completion ids + the tokenised suffix.
    Extended,
    /// Rendered and tokenised whole because the text no longer extends the previous one.
    Rebuilt,
}

/// Tracks one episode's exact token context across turns.
#[derive(Debug, Default, Clone)]
pub struct ContextTracker {
    /// Rendered text of the current context (ends with the generation prompt).
    text: String,
    /// Exact token ids of the current context.
    ids: Vec<u32>,
    /// The last completion: its ids and decoded text, if one was recorded since `next`.
    completion: Option<(Vec<u32>, String)>,
}

impl ContextTracker {
    /// A tracker for a new episode.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token ids of the current context.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Records the completion sampled for the current context (its exact ids).
    pub fn record_completion(&mut self, codec: &dyn ChatCodec, ids: &[u32]) -> Result<String, CodecError> {
        let text = codec.decode(ids)?;
        self.completion = Some((ids.to_vec(), text.clone()));
        Ok(text)
    }

    /// Computes the context ids for the next turn's messages.
    ///
    /// `force_rebuild` is set when the environment reports a context edit: even if the text
    /// happened to extend the old one, the edit's semantics are a new context.
    pub fn next(&mut self, codec: &dyn ChatCodec, messages: &[ChatMessage], tools: &[Value], force_rebuild: bool) -> Result<ContextStep, CodecError> {
        let text = codec.render(messages, tools, true)?;
        let step = match self.completion.take() {
            None => ContextStep::Initial,
            Some((completion_ids, completion_text)) => {
                let extends = !force_rebuild
                    && text.len() >= self.text.len() + completion_text.len()
                    && text.starts_with(&self.text)
                    && text[self.text.len()..].starts_with(&completion_text);
                if extends {
                    let suffix = &text[self.text.len() + completion_text.len()..];
                    self.ids.extend_from_slice(&completion_ids);
                    self.ids.extend(codec.encode(suffix)?);
                    self.text = text;
                    return Ok(ContextStep::Extended);
                }
                ContextStep::Rebuilt
            }
        };
        self.ids = codec.encode(&text)?;
        self.text = text;
        Ok(step)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use memrl_envs::message::Role;

    /// A ChatML-style template over a byte tokenizer with one merge ("ab" -> 300) and the
    /// special tokens `<s>` (256) and `</s>` (257): enough to show why suffix tokenisation
    /// keeps the sampled ids while whole re-tokenisation changes them.
    pub(crate) struct ToyCodec;

    impl ChatCodec for ToyCodec {
        fn render(&self, messages: &[ChatMessage], _tools: &[Value], add_generation_prompt: bool) -> Result<String, CodecError> {
            let mut s = String::new();
            for m in messages {
                let role = match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                    Role::Tool => "tool",
                };
                s += &format!("<s>{role}\n{}</s>\n", m.content);
            }
            if add_generation_prompt {
                s += "<s>assistant\n";
            }
            Ok(s)
        }
        fn encode(&self, text: &str) -> Result<Vec<u32>, CodecError> {
            let mut out = Vec::new();
            let b = text.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if text[i..].starts_with("<s>") {
                    out.push(256);
                    i += 3;
                } else if text[i..].starts_with("</s>") {
                    out.push(257);
                    i += 4;
                } else if text[i..].starts_with("ab") {
                    out.push(300);
                    i += 2;
                } else {
                    out.push(b[i] as u32);
                    i += 1;
                }
            }
            Ok(out)
        }
        fn decode(&self, ids: &[u32]) -> Result<String, CodecError> {
            let mut s = Vec::new();
            for &id in ids {
                match id {
                    256 => s.extend_from_slice(b"<s>"),
                    257 => s.extend_from_slice(b"</s>"),
                    300 => s.extend_from_slice(b"ab"),
                    b if b < 256 => s.push(b as u8),
                    _ => return Err(CodecError(format!("unknown id {id}"))),
                }
            }
            String::from_utf8(s).map_err(|e| CodecError(e.to_string()))
        }
        fn renders_tools(&self) -> bool {
            false
        }
    }

    fn msg(role: Role, content: &str) -> ChatMessage {
        ChatMessage::new(role, content)
    }

    #[test]
    fn appended_turns_keep_the_sampled_ids() {
        let codec = ToyCodec;
        let mut t = ContextTracker::new();
        let mut msgs = vec![msg(Role::System, "sys"), msg(Role::User, "q")];
        assert_eq!(t.next(&codec, &msgs, &[], false).unwrap(), ContextStep::Initial);
        let first = t.ids().to_vec();
        // The policy sampled "a", "b" as two tokens (not the merge 300), then </s>.
        let completion = [b'a' as u32, b'b' as u32, 257];
        let text = t.record_completion(&codec, &completion).unwrap();
        assert_eq!(text, "ab</s>");
        msgs.push(msg(Role::Assistant, "ab"));
        msgs.push(msg(Role::User, "obs"));
        assert_eq!(t.next(&codec, &msgs, &[], false).unwrap(), ContextStep::Extended);
        let ids = t.ids().to_vec();
        assert_eq!(&ids[..first.len()], &first[..], "previous context is a prefix");
        assert_eq!(&ids[first.len()..first.len() + 3], &completion, "sampled ids kept verbatim");
        // Whole re-tokenisation would have merged "ab" into 300: exactly the drift avoided.
        let whole = codec.encode(&codec.render(&msgs, &[], true).unwrap()).unwrap();
        assert_ne!(ids, whole);
        assert_eq!(codec.decode(&ids).unwrap(), codec.decode(&whole).unwrap(), "same text");
    }

    #[test]
    fn truncated_completion_gets_its_end_token_from_the_suffix() {
        let codec = ToyCodec;
        let mut t = ContextTracker::new();
        let mut msgs = vec![msg(Role::User, "q")];
        t.next(&codec, &msgs, &[], false).unwrap();
        let n = t.ids().len();
        t.record_completion(&codec, &[b'x' as u32]).unwrap(); // hit max tokens: no </s>
        msgs.push(msg(Role::Assistant, "x"));
        msgs.push(msg(Role::User, "o"));
        assert_eq!(t.next(&codec, &msgs, &[], false).unwrap(), ContextStep::Extended);
        assert_eq!(t.ids()[n], b'x' as u32);
        assert_eq!(t.ids()[n + 1], 257, "the template's end token is an environment token");
    }

    #[test]
    fn edits_and_rewrites_rebuild() {
        let codec = ToyCodec;
        let mut t = ContextTracker::new();
        let msgs = vec![msg(Role::System, "s"), msg(Role::User, "q"), msg(Role::Tool, "doc1")];
        t.next(&codec, &msgs, &[], false).unwrap();
        t.record_completion(&codec, &[b'p' as u32, 257]).unwrap();
        // A prune removed the tool record: the text no longer extends.
        let pruned = vec![msg(Role::System, "s"), msg(Role::User, "q"), msg(Role::Assistant, "p"), msg(Role::Tool, "ok")];
        assert_eq!(t.next(&codec, &pruned, &[], false).unwrap(), ContextStep::Rebuilt);
        assert_eq!(t.ids(), codec.encode(&codec.render(&pruned, &[], true).unwrap()).unwrap().as_slice());
        // An edit flagged by the environment rebuilds even when the text extends.
        t.record_completion(&codec, &[b'z' as u32, 257]).unwrap();
        let mut more = pruned.clone();
        more.push(msg(Role::Assistant, "z"));
        assert_eq!(t.next(&codec, &more, &[], true).unwrap(), ContextStep::Rebuilt);
    }
}
