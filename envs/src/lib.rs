//! Multi-turn memory environments: the memory bank, the working context, tool-call
//! parsing, the `Env` trait, environments, rewards and model-free policies.
//! Knows text, never tensors.
//!
//! Entry points: [`registry::build_env`] (an env from a name and serde knobs),
//! [`env::Env`], [`sampler::TaskSampler`], [`policy::ScriptedPolicy`],
//! [`rollout::EpisodeRun`] and [`rollout::run_episode`].

pub mod bm25;
pub mod context;
pub mod data_path;
pub mod env;
pub mod facts;
pub mod ids;
pub mod ledger;
pub mod locomo;
pub mod longmemeval;
pub mod memory;
pub mod memory_calls;
pub mod message;
pub mod multiobjective;
pub mod policy;
pub mod registry;
pub mod rollout;
pub mod sampler;
pub mod scratchpad;
pub mod stream;
pub mod text;
pub mod tokens;
pub mod toolcall;
pub mod tools;

pub use env::{ContextEdit, Env, EnvError, EpisodeEnd, Next, ScriptedKind, Split, Step, TaskId, Turn};
pub use message::{ChatMessage, Role};
pub use tokens::TokenCounter;
