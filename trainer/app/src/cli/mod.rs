//! The `memrl` command line: one module per subcommand, dispatched from `main.rs`.

pub mod bench;
pub mod data;
pub mod env;
pub mod eval;
pub mod generate;
pub mod plot;
pub mod score;
pub mod sweep;
pub mod tokenize;
pub mod train;
