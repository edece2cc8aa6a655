//! The Rust Porter port must reproduce NLTK's `PorterStemmer()` on every row of the
//! reference table written by `scripts/reference/porter_table.py`.

use memrl_datasets::scoring::porter::stem;

#[test]
fn matches_every_row_of_the_nltk_table() {
    let table = include_str!("fixtures/porter_nltk.tsv");
    let mut rows = 0;
    let mut mismatches = Vec::new();
    for (line_number, line) in table.lines().enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (word, expected) = line.split_once('\t').unwrap_or_else(|| panic!("porter_nltk.tsv line {}: no tab", line_number + 1));
        rows += 1;
        let got = stem(word);
        if got != expected {
            mismatches.push(format!("{word:?}: nltk {expected:?}, ours {got:?}"));
        }
    }
    assert!(rows > 10_000, "the table should hold many words, found {rows}");
    assert!(
        mismatches.is_empty(),
        "{} of {rows} words differ, first ones:\n{}",
        mismatches.len(),
        mismatches.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}
