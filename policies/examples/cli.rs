//! Runs the trainer's `memrl generate` / `memrl tokenize` CLI modules against this crate, so
//! they compile and can be tried before the trainer depends on memrl-policies.
//!
//!     cargo run -p memrl-policies --example cli -- generate --model M.gguf --chat "Hi" --json
//!     cargo run -p memrl-policies --example cli -- tokenize --model M.gguf "some text"

#[path = "../../trainer/src/cli/generate.rs"]
mod generate;
#[path = "../../trainer/src/cli/tokenize.rs"]
mod tokenize;

use clap::Parser;

/// The two policy subcommands of `memrl`.
#[derive(Parser)]
#[command(name = "memrl-policies-cli")]
enum Cli {
    /// Generate from a prompt or chat message.
    Generate(generate::GenerateArgs),
    /// Tokenize a text.
    Tokenize(tokenize::TokenizeArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Generate(a) => generate::run(a),
        Cli::Tokenize(a) => tokenize::run(a),
    }
}
