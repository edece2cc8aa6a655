//! Okapi BM25 over small, changing collections (a memory bank, one episode's knowledge
//! base). Hand-written rather than taken from a crate: the collections are tiny and
//! rebuilt often, we need the exact formula documented and tested against hand
//! computation, and deterministic tie-breaking by insertion order.
//!
//! score(q, d) = Σ_{t ∈ unique terms of q} idf(t) · tf(t,d)·(k1+1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl))
//! idf(t) = ln(1 + (N − n_t + 0.5) / (n_t + 0.5))   (the Lucene variant, always > 0)

use crate::text::terms;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// BM25 parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bm25Params {
    /// Term-frequency saturation.
    pub k1: f64,
    /// Length normalisation.
    pub b: f64,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Self { k1: 1.2, b: 0.75 }
    }
}

/// An index over a fixed list of documents.
#[derive(Debug, Clone)]
pub struct Bm25Index {
    params: Bm25Params,
    /// Per document: term → frequency, and length in terms.
    docs: Vec<(HashMap<String, u32>, usize)>,
    doc_freq: HashMap<String, u32>,
    avg_len: f64,
}

impl Bm25Index {
    /// Indexes `docs` in order; positions in the result refer to this order.
    pub fn new<S: AsRef<str>>(docs: &[S], params: Bm25Params) -> Self {
        let mut doc_freq: HashMap<String, u32> = HashMap::new();
        let mut indexed = Vec::with_capacity(docs.len());
        let mut total = 0usize;
        for doc in docs {
            let toks = terms(doc.as_ref());
            total += toks.len();
            let mut tf: HashMap<String, u32> = HashMap::new();
            for t in toks.iter() {
                *tf.entry(t.clone()).or_default() += 1;
            }
            for t in tf.keys() {
                *doc_freq.entry(t.clone()).or_default() += 1;
            }
            indexed.push((tf, toks.len()));
        }
        let avg_len = if docs.is_empty() { 0.0 } else { total as f64 / docs.len() as f64 };
        Self { params, docs: indexed, doc_freq, avg_len }
    }

    /// Number of indexed documents.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// BM25 score of document `doc` for `query`.
    pub fn score(&self, query: &str, doc: usize) -> f64 {
        let mut q = terms(query);
        q.sort();
        q.dedup();
        self.score_terms(&q, doc)
    }

    fn score_terms(&self, query_terms: &[String], doc: usize) -> f64 {
        let n = self.docs.len() as f64;
        let (tf, len) = &self.docs[doc];
        let Bm25Params { k1, b } = self.params;
        let norm = if self.avg_len > 0.0 { *len as f64 / self.avg_len } else { 0.0 };
        query_terms
            .iter()
            .filter_map(|t| {
                let f = *tf.get(t)? as f64;
                let df = *self.doc_freq.get(t)? as f64;
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                Some(idf * f * (k1 + 1.0) / (f + k1 * (1.0 - b + b * norm)))
            })
            .sum()
    }

    /// The `k` best documents with a positive score, best first; ties keep index order.
    pub fn top_k(&self, query: &str, k: usize) -> Vec<(usize, f64)> {
        let mut q = terms(query);
        q.sort();
        q.dedup();
        let mut scored: Vec<(usize, f64)> = (0..self.docs.len()).map(|d| (d, self.score_terms(&q, d))).filter(|(_, s)| *s > 0.0).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three documents; scores computed by hand with k1 = 1.2, b = 0.75.
    #[test]
    fn scores_match_hand_computation() {
        let docs = ["cat sat mat", "cat cat dog", "bird"];
        let idx = Bm25Index::new(&docs, Bm25Params::default());
        // N = 3, avgdl = 7/3. df(cat) = 2 → idf = ln(1 + 1.5/2.5) = ln 1.6.
        let idf_cat = 1.6f64.ln();
        // doc 0: tf 1, |d| = 3 → denom = 1 + 1.2·(0.25 + 0.75·3/(7/3)).
        let d0 = idf_cat * 2.2 / (1.0 + 1.2 * (0.25 + 0.75 * 3.0 / (7.0 / 3.0)));
        // doc 1: tf 2, |d| = 3.
        let d1 = idf_cat * 2.0 * 2.2 / (2.0 + 1.2 * (0.25 + 0.75 * 3.0 / (7.0 / 3.0)));
        assert!((idx.score("cat", 0) - d0).abs() < 1e-12);
        assert!((idx.score("cat", 1) - d1).abs() < 1e-12);
        assert_eq!(idx.score("cat", 2), 0.0);
        // "bird": df 1 → idf = ln(1 + 2.5/1.5); doc 2 has |d| = 1.
        let idf_bird = (1.0f64 + 2.5 / 1.5).ln();
        let d2 = idf_bird * 2.2 / (1.0 + 1.2 * (0.25 + 0.75 * 1.0 / (7.0 / 3.0)));
        assert!((idx.score("Bird bird!", 2) - d2).abs() < 1e-12, "query terms are deduplicated");
        let top = idx.top_k("cat bird", 5);
        assert_eq!(top.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 1, 0]);
        assert!(idx.top_k("zebra", 3).is_empty());
    }

    #[test]
    fn ties_keep_insertion_order() {
        let idx = Bm25Index::new(&["a x", "a y", "a z"], Bm25Params::default());
        assert_eq!(idx.top_k("a", 2).iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1]);
        assert!(Bm25Index::new::<&str>(&[], Bm25Params::default()).top_k("a", 2).is_empty());
    }
}
