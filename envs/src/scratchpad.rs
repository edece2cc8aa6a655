//! MemAgent's overwrite memory (algorithms.md §6): one text that every chunk replaces
//! wholesale, truncated to a token budget.

use crate::tokens::{TokenCounter, truncate_to_tokens};

/// The overwrite memory of one episode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scratchpad {
    text: String,
}

impl Scratchpad {
    /// Current memory text (empty before the first write).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Replaces the memory with `new_text`, cut to `max_tokens`. Returns true if cut.
    pub fn overwrite(&mut self, new_text: &str, max_tokens: usize, counter: &dyn TokenCounter) -> bool {
        let kept = truncate_to_tokens(new_text.trim(), max_tokens, counter);
        let cut = kept.len() < new_text.trim().len();
        self.text = kept.to_string();
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::WhitespaceCounter;

    #[test]
    fn overwrite_replaces_and_truncates() {
        let mut s = Scratchpad::default();
        assert!(!s.overwrite("a b", 5, &WhitespaceCounter));
        assert!(s.overwrite(" c d e f ", 2, &WhitespaceCounter));
        assert_eq!(s.text(), "c d ");
    }
}
