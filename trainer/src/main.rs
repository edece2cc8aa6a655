//! `memrl`: train, evaluate and score LLM agents that manage their own memory.

use clap::Parser;

/// memrl: reinforcement learning for LLM agents that manage their own memory.
#[derive(Parser)]
#[command(name = "memrl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
