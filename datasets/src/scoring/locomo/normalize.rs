//! Answer normalisation and tokenisation of the official LoCoMo scorer, with the Python
//! string semantics it relies on (README §1.5).

use std::sync::LazyLock;

use regex::Regex;

use crate::scoring::porter;

/// Whole words `a`, `an`, `the`, `and`; `\b` is Unicode-aware in the `regex` crate, with
/// the same word characters as Python's `regex` module that the official code uses
/// (alphabetic, marks, decimal digits, connector punctuation, joiners; checked over all
/// code points, differing only on characters newer than Python 3.11's Unicode tables).
static ARTICLES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(a|an|the|and)\b").expect("the article pattern is valid"));

/// Python's `str.isspace()`: Rust's `White_Space` plus U+001C..U+001F, which Python also
/// treats as separators in `str.split()` and `str.strip()`.
pub fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no argument.
pub fn python_split(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_python_whitespace).filter(|part| !part.is_empty())
}

/// Python's `str.strip()` with no argument.
pub fn python_strip(text: &str) -> &str {
    text.trim_matches(is_python_whitespace)
}

/// The official `normalize_answer`: remove commas, lowercase, delete ASCII punctuation
/// (Python's `string.punctuation`; curly quotes, dashes and other non-ASCII marks stay),
/// replace whole words a/an/the/and with a space, collapse whitespace.
pub fn normalize_answer(text: &str) -> String {
    let lowered = text.replace(',', "").to_lowercase();
    let without_punctuation: String = lowered.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    let without_articles = ARTICLES.replace_all(&without_punctuation, " ");
    python_split(&without_articles).collect::<Vec<_>>().join(" ")
}

/// The official tokens: [`normalize_answer`], split on whitespace, each token stemmed with
/// NLTK's Porter stemmer (which also lowercases).
pub fn answer_tokens(text: &str) -> Vec<String> {
    python_split(&normalize_answer(text)).map(porter::stem).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_steps() {
        assert_eq!(normalize_answer("The cat, and A dog!"), "cat dog");
        assert_eq!(normalize_answer("1,000 apples"), "1000 apples");
        assert_eq!(normalize_answer("Andes and an answer"), "andes answer");
        assert_eq!(normalize_answer("a-b the_x"), "ab thex");
        assert_eq!(normalize_answer("“Quoted” — text’s"), "“quoted” — text’s");
        assert_eq!(normalize_answer("theatre\tand\u{1c}then"), "theatre then");
        assert_eq!(normalize_answer(""), "");
        assert_eq!(normalize_answer(" ,,, "), "");
    }

    #[test]
    fn article_boundaries_are_unicode_aware() {
        // "é" is a word character, so "a" inside "aé" is not a whole word.
        assert_eq!(normalize_answer("aé a"), "aé");
        assert_eq!(normalize_answer("the2 the"), "the2");
    }

    #[test]
    fn tokens_are_stemmed() {
        assert_eq!(answer_tokens("Running to the parks, and swimming"), ["run", "to", "park", "swim"]);
    }

    #[test]
    fn python_whitespace() {
        assert_eq!(python_strip("\u{1f} x \u{a0}"), "x");
        assert_eq!(python_split("a\u{1d}b\u{3000}c").collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(!is_python_whitespace('\u{200b}'), "zero-width space is not whitespace");
    }
}
