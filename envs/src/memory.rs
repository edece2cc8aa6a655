//! The memory bank (Memory-R1 / Mem0 / Mem-α): entries with ids and timestamps,
//! ADD / UPDATE / DELETE / NOOP, capacity in entries and tokens, BM25 search.

use crate::bm25::{Bm25Index, Bm25Params};
use crate::ids::{IdGen, IdStyle};
use crate::tokens::TokenCounter;
use serde::{Deserialize, Serialize};

/// What happens when a budget is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetMode {
    /// Refuse the operation (memory) or end the episode (context, turns).
    #[default]
    Enforce,
    /// Let it happen, count a violation and charge the budget penalty.
    Count,
}

/// One memory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// Stable id the policy addresses (`m3`).
    pub id: String,
    /// Text of the memory.
    pub content: String,
    /// Turn at which it was added.
    pub created_turn: u32,
    /// Turn of the last update.
    pub updated_turn: u32,
    /// Optional world-time label (e.g. the session date in LoCoMo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Token count of `content` under the environment's counter.
    pub tokens: usize,
}

/// A memory operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum MemoryOp {
    /// Add a new entry.
    Add {
        /// Entry text.
        content: String,
    },
    /// Replace the text of an existing entry.
    Update {
        /// Entry id.
        id: String,
        /// New text.
        content: String,
    },
    /// Remove an entry.
    Delete {
        /// Entry id.
        id: String,
    },
    /// Change nothing.
    Noop,
}

/// Why a memory operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// No entry has this id.
    #[error("no memory entry has id {0:?}")]
    UnknownId(String),
    /// The content is empty or whitespace.
    #[error("memory content is empty")]
    EmptyContent,
    /// An identical entry already exists.
    #[error("an identical memory entry already exists ({0})")]
    Duplicate(String),
    /// Adding would exceed the entry capacity.
    #[error("memory is full ({0} entries); delete or update an entry instead")]
    FullEntries(usize),
    /// The change would exceed the token capacity.
    #[error("memory token budget exceeded ({used} > {max} tokens)")]
    FullTokens {
        /// Tokens the bank would hold.
        used: usize,
        /// Capacity.
        max: usize,
    },
}

/// What an applied operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryOutcome {
    /// Id of the entry touched (None for NOOP).
    pub id: Option<String>,
    /// True if a capacity was exceeded under [`BudgetMode::Count`].
    pub violation: bool,
}

/// Capacity limits of a bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryCapacity {
    /// Maximum number of entries.
    pub max_entries: usize,
    /// Maximum total tokens over all entries.
    pub max_tokens: usize,
}

/// The memory bank of one episode.
#[derive(Debug, Clone)]
pub struct MemoryBank {
    entries: Vec<MemoryEntry>,
    ids: IdGen,
    capacity: MemoryCapacity,
    mode: BudgetMode,
}

impl MemoryBank {
    /// An empty bank; ids come from `seed` under `style`.
    pub fn new(capacity: MemoryCapacity, mode: BudgetMode, style: IdStyle, seed: u64) -> Self {
        Self { entries: Vec::new(), ids: IdGen::new('m', style, seed), capacity, mode }
    }

    /// Entries in insertion order.
    pub fn entries(&self) -> &[MemoryEntry] {
        &self.entries
    }

    /// Entry by id.
    pub fn get(&self, id: &str) -> Option<&MemoryEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// Total tokens held.
    pub fn tokens(&self) -> usize {
        self.entries.iter().map(|e| e.tokens).sum()
    }

    /// The bank's capacity.
    pub fn capacity(&self) -> MemoryCapacity {
        self.capacity
    }

    /// Applies one operation at `turn`, labelling new entries with `date`.
    pub fn apply(&mut self, op: &MemoryOp, turn: u32, date: Option<&str>, counter: &dyn TokenCounter) -> Result<MemoryOutcome, MemoryError> {
        match op {
            MemoryOp::Noop => Ok(MemoryOutcome { id: None, violation: false }),
            MemoryOp::Add { content } => {
                let content = content.trim();
                if content.is_empty() {
                    return Err(MemoryError::EmptyContent);
                }
                if let Some(e) = self.entries.iter().find(|e| e.content == content) {
                    return Err(MemoryError::Duplicate(e.id.clone()));
                }
                let tokens = counter.count(content);
                let mut violation = false;
                if self.entries.len() >= self.capacity.max_entries {
                    self.check(MemoryError::FullEntries(self.capacity.max_entries))?;
                    violation = true;
                }
                let used = self.tokens() + tokens;
                if used > self.capacity.max_tokens {
                    self.check(MemoryError::FullTokens { used, max: self.capacity.max_tokens })?;
                    violation = true;
                }
                let id = self.ids.next_id();
                self.entries.push(MemoryEntry {
                    id: id.clone(),
                    content: content.to_string(),
                    created_turn: turn,
                    updated_turn: turn,
                    date: date.map(str::to_string),
                    tokens,
                });
                Ok(MemoryOutcome { id: Some(id), violation })
            }
            MemoryOp::Update { id, content } => {
                let content = content.trim();
                if content.is_empty() {
                    return Err(MemoryError::EmptyContent);
                }
                let pos = self.position(id)?;
                let tokens = counter.count(content);
                let used = self.tokens() - self.entries[pos].tokens + tokens;
                let mut violation = false;
                if used > self.capacity.max_tokens {
                    self.check(MemoryError::FullTokens { used, max: self.capacity.max_tokens })?;
                    violation = true;
                }
                let e = &mut self.entries[pos];
                e.content = content.to_string();
                e.tokens = tokens;
                e.updated_turn = turn;
                if let Some(d) = date {
                    e.date = Some(d.to_string());
                }
                Ok(MemoryOutcome { id: Some(id.clone()), violation })
            }
            MemoryOp::Delete { id } => {
                let pos = self.position(id)?;
                self.entries.remove(pos);
                Ok(MemoryOutcome { id: Some(id.clone()), violation: false })
            }
        }
    }

    fn check(&self, err: MemoryError) -> Result<(), MemoryError> {
        match self.mode {
            BudgetMode::Enforce => Err(err),
            BudgetMode::Count => Ok(()),
        }
    }

    fn position(&self, id: &str) -> Result<usize, MemoryError> {
        self.entries.iter().position(|e| e.id == id).ok_or_else(|| MemoryError::UnknownId(id.to_string()))
    }

    /// The `k` entries that best match `query` under BM25, best first.
    pub fn search(&self, query: &str, k: usize, params: Bm25Params) -> Vec<(&MemoryEntry, f64)> {
        let texts: Vec<&str> = self.entries.iter().map(|e| e.content.as_str()).collect();
        let index = Bm25Index::new(&texts, params);
        index.top_k(query, k).into_iter().map(|(i, s)| (&self.entries[i], s)).collect()
    }

    /// Renders entries one per line as `[id] (date) content`, or `(empty)`.
    pub fn render<'a>(entries: impl IntoIterator<Item = &'a MemoryEntry>) -> String {
        let lines: Vec<String> = entries
            .into_iter()
            .map(|e| match &e.date {
                Some(d) => format!("[{}] ({}) {}", e.id, d, e.content),
                None => format!("[{}] {}", e.id, e.content),
            })
            .collect();
        if lines.is_empty() { "(empty)".to_string() } else { lines.join("\n") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::WhitespaceCounter;

    fn bank(mode: BudgetMode) -> MemoryBank {
        MemoryBank::new(MemoryCapacity { max_entries: 2, max_tokens: 6 }, mode, IdStyle::Sequential, 0)
    }

    fn add(s: &str) -> MemoryOp {
        MemoryOp::Add { content: s.into() }
    }

    #[test]
    fn add_update_delete_noop() {
        let mut b = bank(BudgetMode::Enforce);
        let c = WhitespaceCounter;
        assert_eq!(b.apply(&add("alice city paris"), 1, None, &c).unwrap().id.as_deref(), Some("m1"));
        assert_eq!(b.apply(&add("alice city paris"), 1, None, &c), Err(MemoryError::Duplicate("m1".into())));
        assert_eq!(b.apply(&add("  "), 1, None, &c), Err(MemoryError::EmptyContent));
        b.apply(&MemoryOp::Update { id: "m1".into(), content: "alice city rome".into() }, 2, Some("d"), &c).unwrap();
        assert_eq!(b.get("m1").unwrap().content, "alice city rome");
        assert_eq!(b.get("m1").unwrap().updated_turn, 2);
        assert_eq!(b.get("m1").unwrap().date.as_deref(), Some("d"));
        assert_eq!(b.apply(&MemoryOp::Noop, 3, None, &c).unwrap().id, None);
        assert_eq!(b.apply(&MemoryOp::Delete { id: "m9".into() }, 3, None, &c), Err(MemoryError::UnknownId("m9".into())));
        b.apply(&MemoryOp::Delete { id: "m1".into() }, 3, None, &c).unwrap();
        assert!(b.entries().is_empty());
        // ids are never reused
        assert_eq!(b.apply(&add("x"), 4, None, &c).unwrap().id.as_deref(), Some("m2"));
    }

    #[test]
    fn capacity_enforced_or_counted() {
        let c = WhitespaceCounter;
        let mut b = bank(BudgetMode::Enforce);
        b.apply(&add("a b"), 0, None, &c).unwrap();
        b.apply(&add("c d"), 0, None, &c).unwrap();
        assert_eq!(b.apply(&add("e"), 0, None, &c), Err(MemoryError::FullEntries(2)));
        let upd = MemoryOp::Update { id: "m1".into(), content: "a b c d e".into() };
        assert_eq!(b.apply(&upd, 0, None, &c), Err(MemoryError::FullTokens { used: 7, max: 6 }));
        let mut b = bank(BudgetMode::Count);
        b.apply(&add("a b"), 0, None, &c).unwrap();
        b.apply(&add("c d"), 0, None, &c).unwrap();
        assert!(b.apply(&add("e"), 0, None, &c).unwrap().violation);
        assert_eq!(b.entries().len(), 3);
    }

    #[test]
    fn search_ranks_by_bm25() {
        let c = WhitespaceCounter;
        let mut b = MemoryBank::new(MemoryCapacity { max_entries: 10, max_tokens: 100 }, BudgetMode::Enforce, IdStyle::Sequential, 0);
        for s in ["alice lives in paris", "bob plays chess", "alice plays golf"] {
            b.apply(&add(s), 0, None, &c).unwrap();
        }
        let hits = b.search("what does alice play", 2, Bm25Params::default());
        assert_eq!(hits[0].0.id, "m3");
        assert_eq!(hits.len(), 2);
        assert_eq!(MemoryBank::render(b.entries().iter().take(1)), "[m1] alice lives in paris");
    }
}
