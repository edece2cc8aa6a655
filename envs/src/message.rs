//! Chat messages as the trainer's chat template consumes them.

use serde::{Deserialize, Serialize};

/// Who speaks a message, in chat-template terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The system prompt.
    System,
    /// The user / environment speaking as the user.
    User,
    /// The policy's own completions.
    Assistant,
    /// A tool response (Qwen renders it inside `<tool_response>`).
    Tool,
}

/// One chat message. `record_id` is the stable id of the context record the message
/// renders (absent for the instruction); chat templates ignore it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Speaker.
    pub role: Role,
    /// Exact text content.
    pub content: String,
    /// Id of the context record this message renders, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
}

impl ChatMessage {
    /// A message with no record id.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into(), record_id: None }
    }
}
