//! `memrl bench <what>`: throughput measurements. `memrl bench envs [--json]` measures
//! environment steps per second on one core under the oracle policy, timing the env's
//! `reset` + `step` separately from the policy's own work. `memrl bench policy` measures
//! learner and decode throughput on a real model next to PyTorch / transformers ([`policy`]).

pub mod flops;
pub mod model_source;
pub mod peer;
pub mod policy;

use anyhow::Result;
use memrl_envs::env::{Next, ScriptedKind, Split, TaskId};
use memrl_envs::ledger::derive_seed;
use memrl_envs::registry::{ENV_NAMES, build_env};
use memrl_envs::tokens::ByteApproxCounter;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `memrl bench …`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// Things `memrl bench` can measure.
#[derive(clap::Subcommand, Debug)]
pub enum BenchWhat {
    /// Environment steps per second per core under the oracle policy.
    Envs(BenchEnvsArgs),
    /// Learner (fwd + bwd + AdamW) and decode tokens/s on a real model, next to PyTorch / transformers.
    Policy(policy::BenchPolicyArgs),
}

/// Arguments of `memrl bench envs`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchEnvsArgs {
    /// Environments to measure (default: all; ones whose data is missing are reported as skipped).
    #[arg(long = "env")]
    pub envs: Vec<String>,
    /// Seconds of measurement per environment.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One environment's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EnvBench {
    /// Environment.
    pub env: String,
    /// Set when the env could not be built (e.g. data missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Episodes completed.
    pub episodes: u64,
    /// Steps (completions applied).
    pub steps: u64,
    /// Mean wall time of one env step (reset time spread over steps), µs.
    pub env_us_per_step: f64,
    /// Env steps per second on one core (env time only).
    pub env_steps_per_sec: f64,
    /// Mean time the oracle policy took to write one completion, µs.
    pub policy_us_per_step: f64,
    /// Steps per second on one core including the oracle.
    pub steps_per_sec_with_policy: f64,
}

/// Measures one environment on the current thread.
pub fn bench_env(name: &str, seconds: f64) -> EnvBench {
    let mut out = EnvBench {
        env: name.into(),
        skipped: None,
        episodes: 0,
        steps: 0,
        env_us_per_step: 0.0,
        env_steps_per_sec: 0.0,
        policy_us_per_step: 0.0,
        steps_per_sec_with_policy: 0.0,
    };
    let mut env = match build_env(name, serde_json::Value::Null, Arc::new(ByteApproxCounter::default())) {
        Ok(e) => e,
        Err(e) => {
            out.skipped = Some(crate::cli::error_text(&e));
            return out;
        }
    };
    let split = [Split::Train, Split::Test, Split::Validation].into_iter().find(|s| env.task_count(*s) != Some(0)).unwrap_or(Split::Train);
    let count = env.task_count(split);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let (mut env_time, mut policy_time) = (Duration::ZERO, Duration::ZERO);
    let start = Instant::now();
    let budget = Duration::from_secs_f64(seconds.max(0.01));
    'outer: while start.elapsed() < budget {
        let index = count.map(|c| out.episodes % c.max(1)).unwrap_or(out.episodes);
        let t = Instant::now();
        if let Err(e) = env.reset(TaskId { split, index }, derive_seed(&[out.episodes])) {
            out.skipped = Some(crate::cli::error_text(&e));
            return out;
        }
        env_time += t.elapsed();
        loop {
            let t = Instant::now();
            let Ok(text) = env.scripted(ScriptedKind::Oracle, &mut rng) else { break 'outer };
            policy_time += t.elapsed();
            let t = Instant::now();
            let Ok(step) = env.step(&text) else { break 'outer };
            env_time += t.elapsed();
            out.steps += 1;
            if let Next::Done(_) = step.next {
                break;
            }
        }
        out.episodes += 1;
    }
    let steps = out.steps.max(1) as f64;
    out.env_us_per_step = env_time.as_secs_f64() * 1e6 / steps;
    out.env_steps_per_sec = steps / env_time.as_secs_f64().max(1e-9);
    out.policy_us_per_step = policy_time.as_secs_f64() * 1e6 / steps;
    out.steps_per_sec_with_policy = steps / (env_time + policy_time).as_secs_f64().max(1e-9);
    out
}

use rand::SeedableRng;

/// Runs `memrl bench …`.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
        BenchWhat::Envs(a) => {
            let names: Vec<String> = if a.envs.is_empty() { ENV_NAMES.iter().map(|s| s.to_string()).collect() } else { a.envs.clone() };
            let results: Vec<EnvBench> = names.iter().map(|n| bench_env(n, a.seconds)).collect();
            if a.json {
                outln!("{}", serde_json::to_string(&serde_json::json!({"bench": "envs", "policy": "oracle", "threads": 1, "results": results}))?);
            } else {
                outln!(
                    "{:<15} {:>9} {:>9} {:>12} {:>14} {:>12} {:>16}",
                    "env",
                    "episodes",
                    "steps",
                    "env µs/step",
                    "env steps/s",
                    "oracle µs",
                    "steps/s w/ orac"
                );
                for r in &results {
                    match &r.skipped {
                        Some(why) => outln!("{:<15} skipped: {why}", r.env),
                        None => outln!(
                            "{:<15} {:>9} {:>9} {:>12.1} {:>14.0} {:>12.1} {:>16.0}",
                            r.env,
                            r.episodes,
                            r.steps,
                            r.env_us_per_step,
                            r.env_steps_per_sec,
                            r.policy_us_per_step,
                            r.steps_per_sec_with_policy
                        ),
                    }
                }
            }
            Ok(())
        }
        BenchWhat::Policy(a) => {
            let report = policy::bench_policy(&a)?;
            if a.json {
                outln!("{}", serde_json::to_string(&report)?);
            } else {
                out!("{}", policy::format_report(&report));
            }
            Ok(())
        }
    }
}
