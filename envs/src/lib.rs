//! Multi-turn memory environments: the memory bank, the working context, tool-call
//! parsing, the `Env` trait, environments, rewards and model-free policies.
//! Knows text, never tensors.
