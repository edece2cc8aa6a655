//! The `memrl` command line: one module per subcommand, dispatched from `main.rs`.

pub mod bench;
pub mod env;
