//! BLEU-1 as Mem0 / Memory-R1 report it on LoCoMo (NOT the official LoCoMo metric, which
//! is the token F1 in the parent module).
//!
//! Mem0's `evaluation/metrics/utils.py` calls NLTK `sentence_bleu([ref], hyp, weights=(1, 0,
//! 0, 0), smoothing_function=method1)`. With those weights the score is
//! `BP * exp(ln(p1))`: `p1` is the clipped unigram precision (matches / hypothesis length),
//! `BP = 1` if the hypothesis is longer than the reference, `exp(1 - r/c)` otherwise, and the
//! score is 0 when no unigram matches or either text is empty. This module computes it in
//! the same floating-point steps.
//!
//! Tokenisation (ours, documented because it differs from Mem0's): Mem0 tokenises the
//! lowercased text with `nltk.word_tokenize` (Punkt sentence splitting + the NLTK
//! Treebank-style word tokenizer), which needs NLTK data files and many version-dependent
//! rules. We lowercase and take maximal runs of Unicode word characters (`\w+`) plus every
//! other non-whitespace character as its own token. This agrees with NLTK on plain words,
//! numbers and most punctuation; it differs on contractions (`don't` -> `don ' t` here,
//! `do n't` in NLTK), on decimals and dotted abbreviations (`3.5` -> `3 . 5`), and on
//! sentence-internal periods that NLTK keeps attached. `scripts/reference/locomo_score.py`
//! checks the arithmetic against NLTK's `sentence_bleu` on these tokens.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

static TOKEN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\w+|[^\w\s]").expect("the token pattern is valid"));

/// Lowercases and splits into word runs and single non-space symbols (see the module doc).
pub fn bleu_tokens(text: &str) -> Vec<String> {
    let lowered = text.to_lowercase();
    TOKEN.find_iter(&lowered).map(|m| m.as_str().to_string()).collect()
}

/// Sentence-level BLEU-1 of `prediction` against one `reference` (Mem0's definition,
/// our tokenisation; see the module doc). In [0, 1].
pub fn bleu1(prediction: &str, reference: &str) -> f64 {
    if prediction.is_empty() || reference.is_empty() {
        return 0.0;
    }
    let hypothesis = bleu_tokens(prediction.trim());
    let reference = bleu_tokens(reference.trim());
    let mut reference_counts: HashMap<&str, usize> = HashMap::new();
    for token in &reference {
        *reference_counts.entry(token).or_default() += 1;
    }
    let mut hypothesis_counts: HashMap<&str, usize> = HashMap::new();
    for token in &hypothesis {
        *hypothesis_counts.entry(token).or_default() += 1;
    }
    let matches: usize = hypothesis_counts.iter().map(|(token, &count)| count.min(reference_counts.get(token).copied().unwrap_or(0))).sum();
    if matches == 0 {
        return 0.0;
    }
    let (c, r) = (hypothesis.len(), reference.len());
    let brevity_penalty = if c > r { 1.0 } else { (1.0 - r as f64 / c as f64).exp() };
    let precision = matches as f64 / c as f64;
    brevity_penalty * precision.ln().exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenisation() {
        assert_eq!(bleu_tokens("Hello, World! It's 3.5"), ["hello", ",", "world", "!", "it", "'", "s", "3", ".", "5"]);
        assert!(bleu_tokens("  ").is_empty());
    }

    #[test]
    fn values() {
        assert_eq!(bleu1("", "x"), 0.0);
        assert_eq!(bleu1("x", ""), 0.0);
        assert_eq!(bleu1("cat", "dog"), 0.0);
        assert!((bleu1("the cat sat", "the cat sat") - 1.0).abs() < 1e-15);
        // Longer than the reference: no brevity penalty; precision 2/4.
        assert!((bleu1("the cat sat down", "the cat") - 0.5).abs() < 1e-12);
        // Shorter: BP = exp(1 - 4/2), precision 1.
        let expected = (1.0f64 - 2.0).exp();
        assert!((bleu1("the cat", "the cat sat down") - expected).abs() < 1e-12);
        // Clipping: "the the the" against "the cat" matches once.
        assert!((bleu1("the the the", "the cat") - 1.0 / 3.0).abs() < 1e-12);
    }
}
