//! `memrl eval`: a policy plays a benchmark's split to the end and the benchmark's official
//! numbers come out, next to baselines played on the same harness with the same reader model.
//!
//! - [`bench`]: which environments and tasks, and where each question comes from;
//! - [`policy`]: what `--policy` means on each benchmark ([`policy::Plan`]);
//! - [`reader`]: the reader protocol of the baselines (model-free memory, model answers);
//! - [`tracked`]: per-turn phase records and progress;
//! - [`generator`]: the engine as the rollout's generator, with token accounting;
//! - [`judge`]: the model-backed judge (LongMemEval's prompts, Mem0's J for LoCoMo);
//! - [`report`]: tables; [`output`]: where results are written.
//!
//! Decoding is greedy. Episodes are played by the rollout driver
//! ([`memrl_rl::rollout::driver::play_timed`]) in waves of `4 × batch` episodes, so the engine
//! batches the pending turns of all episodes of a wave.

pub mod bench;
pub mod generator;
pub mod judge;
pub mod output;
pub mod policy;
pub mod reader;
pub mod report;
pub mod run;
pub mod tracked;

pub use run::{EvalOptions, EvalReport, JudgeOptions, evaluate};
