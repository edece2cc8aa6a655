//! Model-free text policies: messages in, completion text out, seeded.

use crate::env::{Env, EnvError, ScriptedKind, Turn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A policy that writes the completion for a turn. Model-free policies may ask the
/// environment for their scripted move; a model policy would only read `turn`.
pub trait TextPolicy: Send {
    /// Name for reports.
    fn name(&self) -> String;
    /// The completion for `turn` of `env`'s current episode.
    fn complete(&mut self, env: &dyn Env, turn: &Turn) -> Result<String, EnvError>;
}

/// One of the scripted policies every environment implements (oracle, heuristic,
/// no-memory, full-context), with its own seeded RNG.
pub struct ScriptedPolicy {
    kind: ScriptedKind,
    rng: ChaCha8Rng,
}

impl ScriptedPolicy {
    /// A scripted policy seeded with `seed`.
    pub fn new(kind: ScriptedKind, seed: u64) -> Self {
        Self { kind, rng: ChaCha8Rng::seed_from_u64(seed) }
    }
}

impl TextPolicy for ScriptedPolicy {
    fn name(&self) -> String {
        serde_json::to_value(self.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    fn complete(&mut self, env: &dyn Env, _turn: &Turn) -> Result<String, EnvError> {
        env.scripted(self.kind, &mut self.rng)
    }
}
