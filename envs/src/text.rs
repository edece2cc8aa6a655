//! Text utilities shared by environments: answer normalisation (SQuAD style) and the
//! tokenisation used by BM25.

/// SQuAD-style normalisation: lowercase, drop ASCII punctuation, drop the articles
/// `a`, `an`, `the`, collapse whitespace.
pub fn normalize_answer(text: &str) -> String {
    let lowered: String = text.to_lowercase().chars().map(|c| if c.is_ascii_punctuation() { ' ' } else { c }).collect();
    lowered.split_whitespace().filter(|w| !matches!(*w, "a" | "an" | "the")).collect::<Vec<_>>().join(" ")
}

/// 1.0 when the normalised prediction equals the normalised gold answer, else 0.0.
pub fn exact_match(prediction: &str, gold: &str) -> f64 {
    if normalize_answer(prediction) == normalize_answer(gold) { 1.0 } else { 0.0 }
}

/// Lowercased alphanumeric runs: the terms BM25 indexes.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(|t| t.to_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_and_em() {
        assert_eq!(normalize_answer("  The Red-Car, an idea!"), "red car idea");
        assert_eq!(exact_match("paris.", "Paris"), 1.0);
        assert_eq!(exact_match("Rome", "Paris"), 0.0);
        assert_eq!(terms("Alice's cat, Bob2!"), vec!["alice", "s", "cat", "bob2"]);
    }
}
