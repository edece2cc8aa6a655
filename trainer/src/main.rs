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
enum Command {
    /// Play environments with model-free policies (oracle, heuristic, no-memory, full-context).
    Env(memrl_trainer::cli::env::EnvArgs),
    /// Throughput measurements (`memrl bench envs`).
    Bench(memrl_trainer::cli::bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Env(args) => memrl_trainer::cli::env::run(args),
        Command::Bench(args) => memrl_trainer::cli::bench::run(args),
    }
}
