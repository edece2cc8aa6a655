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
    /// Inspect benchmark data files (counts by category / type).
    Data(memrl_trainer::cli::data::DataArgs),
    /// Score predictions with a benchmark's scorer (LoCoMo official F1; LongMemEval proxy).
    Score(memrl_trainer::cli::score::ScoreArgs),
    /// Play environments with model-free policies (oracle, heuristic, no-memory, full-context).
    Env(memrl_trainer::cli::env::EnvArgs),
    /// Throughput measurements (`memrl bench envs`, `memrl bench policy`).
    Bench(memrl_trainer::cli::bench::BenchArgs),
    /// Generate from a model (HF directory or .gguf) with the batched KV-cache engine.
    Generate(memrl_trainer::cli::generate::GenerateArgs),
    /// Tokenize text with a model's tokenizer.
    Tokenize(memrl_trainer::cli::tokenize::TokenizeArgs),
    /// Train a policy from a TOML config: optional SFT warm start, then RL.
    Train(memrl_trainer::cli::train::TrainArgs),
    /// Evaluate a checkpoint or a baseline on a benchmark (official tables, JSON results).
    Eval(memrl_trainer::cli::eval::EvalArgs),
    /// Run only the `[sft]` stage of a config (supervised warm start on scripted demonstrations).
    Sft(memrl_trainer::cli::train::TrainArgs),
    /// Grid / random search over a base config and several seeds (each trial a `memrl train`).
    Sweep(memrl_trainer::cli::sweep::SweepArgs),
    /// Draw training curves: one run's standard figures, or one metric across several runs.
    Plot(memrl_trainer::cli::plot::PlotArgs),
}

/// Runs the command; an error is printed as one line (`error: outer: cause: ...`, no
/// backtrace even when RUST_BACKTRACE is set) and the exit status is 1.
fn main() -> std::process::ExitCode {
    memrl_trainer::malloc::tune_for_tensors();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data(args) => memrl_trainer::cli::data::run(args),
        Command::Score(args) => memrl_trainer::cli::score::run(args),
        Command::Env(args) => memrl_trainer::cli::env::run(args),
        Command::Bench(args) => memrl_trainer::cli::bench::run(args),
        Command::Generate(args) => memrl_trainer::cli::generate::run(args),
        Command::Tokenize(args) => memrl_trainer::cli::tokenize::run(args),
        Command::Train(args) => memrl_trainer::cli::train::run(args),
        Command::Sft(args) => memrl_trainer::cli::train::run_sft(args),
        Command::Sweep(args) => memrl_trainer::cli::sweep::run(args),
        Command::Eval(args) => memrl_trainer::cli::eval::run(args),
        Command::Plot(args) => memrl_trainer::cli::plot::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", memrl_trainer::cli::error_line(&error));
            std::process::ExitCode::FAILURE
        }
    }
}
