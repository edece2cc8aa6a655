//! Official benchmark scorers. They live beside the loaders because they are part of
//! each benchmark's definition; `envs` builds its rewards on them.

pub mod locomo;
pub mod longmemeval;
pub mod porter;
