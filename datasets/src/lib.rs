//! Benchmark loaders (LoCoMo, LongMemEval) and their official scorers.
//!
//! - [`locomo`]: typed loader for `locomo10.json` with every quirk of the published file.
//! - [`longmemeval`]: typed loader for the LongMemEval `_s` / `_m` / `_oracle` files.
//! - [`scoring`]: the official scorers (LoCoMo token F1 with NLTK-Porter stems; the
//!   LongMemEval judge prompts and metrics) plus clearly labelled proxies.

mod answer;
pub mod error;
pub mod locomo;
pub mod longmemeval;
pub mod scoring;

pub use error::LoadError;
