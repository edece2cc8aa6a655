//! Hyper-parameter sweeps: `memrl sweep SWEEP.toml`.
//!
//! A sweep file names a base run config and the parameters to vary: a grid (every combination)
//! and/or random draws (uniform or log-uniform, drawn from the sweep's own seed), each setting
//! repeated over a list of seeds. Every trial is a `memrl train` child process writing its own run
//! directory inside the sweep's output directory; the sweep then tabulates and plots the final
//! metric per setting (mean ± std over seeds).
//!
//! - [`spec`]: the sweep file, typed and checked.
//! - [`plan`]: settings, random draws and the resolved trial list (`trials.json`).
//! - [`runner`]: trial states (finished / resumable / fresh), child processes, results files.
//! - [`summary`]: per-trial and per-setting tables (CSV, markdown).
//! - [`plot`]: the final metric per setting with its spread over seeds.

pub mod child;
pub mod plan;
pub mod plot;
pub mod results;
pub mod runner;
pub mod spec;
pub mod summary;

use std::path::PathBuf;

pub use plan::{SweepPlan, TrialList, plan_sweep};
pub use runner::{RunOptions, SweepReport, run_sweep};
pub use spec::{SweepSpec, load_sweep};

/// Errors from reading, planning or running a sweep.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The sweep file could not be read.
    #[error("cannot read sweep file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The sweep file is not valid TOML.
    #[error("{file} is not valid TOML: {message}")]
    Syntax {
        /// The sweep file.
        file: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A key of the sweep file is unknown, mistyped or out of range.
    #[error("{file}: `{key}`: {message}")]
    Field {
        /// The sweep file.
        file: String,
        /// The dotted key (or JSON-like path) in the sweep file.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The base config, or a trial's config after its overrides, is invalid.
    #[error("{file}: {what}")]
    Config {
        /// The sweep file.
        file: String,
        /// Which config: the base, or a trial id.
        what: String,
        /// The config error (names the key).
        source: Box<crate::config::ConfigError>,
    },
    /// The output directory holds a sweep with other trials.
    #[error(
        "{dir} holds a different sweep ({difference}); its trials.json no longer matches {file}. \
         Restore the sweep file, choose another output directory (--out), or pass --overwrite to \
         delete {dir} and start again"
    )]
    Changed {
        /// The output directory.
        dir: PathBuf,
        /// The sweep file.
        file: String,
        /// The first difference found.
        difference: String,
    },
    /// The output directory exists but is not a sweep's.
    #[error("{0} exists and is not a sweep output directory (it has no trials.json); choose another output directory")]
    NotASweepDir(PathBuf),
    /// A file the sweep wrote earlier does not parse.
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file-system operation failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An atomic write failed.
    #[error(transparent)]
    Write(#[from] crate::run_dir::RunDirError),
    /// The output directory cannot be replaced or locked (not memrl's, protected, or in use).
    #[error(transparent)]
    Owned(#[from] crate::owned_dir::OwnedDirError),
    /// A stop signal arrived: running trials were stopped and waited for, none was recorded.
    #[error("stopped by signal {signal}: the running trials were stopped; run the same command again to resume them in {}", dir.display())]
    Stopped {
        /// The signal number (SIGTERM 15, SIGINT 2).
        signal: i32,
        /// The sweep's output directory.
        dir: PathBuf,
    },
    /// Reading a trial's metrics failed.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// Drawing the plot failed.
    #[error(transparent)]
    Plot(#[from] crate::plots::PlotError),
    /// Writing the CSV table failed.
    #[error("writing {path}: {message}")]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// The writer's message.
        message: String,
    },
}

/// Maps an I/O error to [`SweepError::Io`] with its action and path.
pub(crate) fn io_err(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> SweepError {
    let path = path.to_path_buf();
    move |source| SweepError::Io { action, path, source }
}
