//! Token counting seam. Environments never depend on a tokenizer: the trainer plugs its
//! real tokenizer in through [`TokenCounter`]; tests and model-free play use the
//! approximate counters below.

/// Counts the tokens of a piece of text. Implementations must be deterministic.
pub trait TokenCounter: Send + Sync {
    /// Number of tokens `text` occupies.
    fn count(&self, text: &str) -> usize;
}

/// Counts whitespace-separated words. Simple and exact to reason about in tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct WhitespaceCounter;

impl TokenCounter for WhitespaceCounter {
    fn count(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
}

/// Approximates BPE tokenizers by `ceil(bytes / bytes_per_token)` (about 4 for English
/// text under Llama/Qwen vocabularies).
#[derive(Debug, Clone, Copy)]
pub struct ByteApproxCounter {
    /// Bytes of UTF-8 text per token; values below 1 are treated as 1.
    pub bytes_per_token: usize,
}

impl Default for ByteApproxCounter {
    fn default() -> Self {
        Self { bytes_per_token: 4 }
    }
}

impl TokenCounter for ByteApproxCounter {
    fn count(&self, text: &str) -> usize {
        text.len().div_ceil(self.bytes_per_token.max(1))
    }
}

/// The longest prefix of `text` (cut on a char boundary) that fits in `max_tokens`.
/// Binary search over byte offsets, so it works with any monotone counter.
pub fn truncate_to_tokens<'a>(text: &'a str, max_tokens: usize, counter: &dyn TokenCounter) -> &'a str {
    if counter.count(text) <= max_tokens {
        return text;
    }
    let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
    let (mut lo, mut hi) = (0usize, boundaries.len() - 1);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if counter.count(&text[..boundaries[mid]]) <= max_tokens {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    &text[..boundaries[lo]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count() {
        assert_eq!(WhitespaceCounter.count("  a bb\tccc \n"), 3);
        assert_eq!(ByteApproxCounter::default().count("abcdefghi"), 3);
        assert_eq!(ByteApproxCounter::default().count(""), 0);
    }

    #[test]
    fn truncation_fits_and_is_maximal() {
        let t = "one two three four five";
        assert_eq!(truncate_to_tokens(t, 2, &WhitespaceCounter), "one two ");
        assert_eq!(truncate_to_tokens(t, 10, &WhitespaceCounter), t);
        let u = "héllo wörld";
        let cut = truncate_to_tokens(u, 1, &ByteApproxCounter::default());
        assert!(cut.len() <= 4 && u.starts_with(cut));
    }
}
