//! The memrl application: the `memrl` CLI, the typed TOML config, the training run loop and
//! its run directory, SFT, evaluation, sweeps, plots, benches and the rollout store. The RL
//! algorithm itself (rollouts, segments, advantages, losses, the learner, one RL step) is the
//! `memrl-rl` crate.

/// `println!` for the CLI's standard output, quiet when the reader has gone (see [`stdout`]).
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdout::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdout::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the CLI's standard output, quiet when the reader has gone (see [`stdout`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write_out(format_args!($($arg)*))
    };
}

pub mod cli;
pub mod config;
pub mod eval;
pub mod malloc;
pub mod metrics;
pub mod out_paths;
pub mod owned_dir;
pub mod plots;
pub mod rollout_store;
pub mod run_dir;
pub mod stdout;
pub mod sweep;
pub mod train;
