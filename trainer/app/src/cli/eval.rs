//! `memrl eval`: evaluate a checkpoint (or a baseline read by it) on a benchmark and print
//! the benchmark's official table; results go to a JSON file (see `memrl_trainer::eval::output`).
//!
//! ```text
//! memrl eval --checkpoint runs/x/checkpoints/step-200 --bench locomo [--split test] [--limit 100]
//! memrl eval --checkpoint model.gguf --bench locomo --policy bm25-rag --limit 50 --max-context 2048
//! memrl eval --bench facts --policy oracle --limit 20          # scripted, no model
//! memrl eval ... --judge-model judge.gguf                      # adds J (LoCoMo) / judge accuracy (LongMemEval)
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::builder::TypedValueParser as _;
use memrl_envs::env::Split;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::eval::bench::{BenchKind, QuestionKey};
use crate::eval::output::{default_output, predictions_path};
use crate::eval::policy::EvalPolicy;
use crate::eval::report::{format_locomo, format_longmemeval};
use crate::eval::{EvalOptions, EvalReport, JudgeOptions, evaluate};
use crate::out_paths::check_outputs;
use crate::run_dir::write_file_atomic;

/// `--bench`: the benchmarks by registry name (the library enum knows nothing of clap).
fn bench_parser() -> impl clap::builder::TypedValueParser<Value = BenchKind> {
    clap::builder::PossibleValuesParser::new(BenchKind::ALL.map(BenchKind::name)).map(|name| BenchKind::from_name(&name).expect("a listed benchmark"))
}

/// `--policy`: the policies by the names `EvalPolicy::name` gives.
fn policy_parser() -> impl clap::builder::TypedValueParser<Value = EvalPolicy> {
    clap::builder::PossibleValuesParser::new(EvalPolicy::ALL.map(EvalPolicy::name)).map(|name| EvalPolicy::from_name(&name).expect("a listed policy"))
}

/// Arguments of `memrl eval`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Policies:\n  \
model         the checkpoint is the agent: it manages its memory and answers with tool calls\n  \
oracle        memory = the evidence turns of the question (hidden ground truth)\n  \
heuristic     Mem0-style model-free memory manager\n  \
full-context  the raw history, most recent turns that fit the window\n  \
bm25-rag      BM25 over every turn, top-k turns\n  \
no-memory     nothing\n\
On locomo/longmemeval the baselines' memory (or raw history) is read by the checkpoint, which writes\n\
every answer; without a checkpoint oracle/heuristic/no-memory also answer by script.\n\n\
Output: --out FILE, else <run>/eval/<bench>-step-N[-<policy>].json for a checkpoint in\n\
<run>/checkpoints/step-N, else eval/<bench>-<model name>[-<policy>].json (eval/<bench>-<policy>.json\n\
without a checkpoint). LoCoMo/LongMemEval also write <stem>.predictions.jsonl for `memrl score`.\n\n\
--config FILE: a TOML file; its [judge] table (model, max_new_tokens) and [env] table (name must be\n\
the bench; options are the base knobs) are used, other tables are ignored (a training config works).")]
pub struct EvalArgs {
    /// The model: an HF checkpoint directory or a .gguf file.
    #[arg(long, value_name = "DIR|FILE.gguf")]
    pub checkpoint: Option<PathBuf>,
    /// Benchmark.
    #[arg(long, value_parser = bench_parser())]
    pub bench: BenchKind,
    /// Policy (see below).
    #[arg(long, value_parser = policy_parser(), default_value = "model")]
    pub policy: EvalPolicy,
    /// Split: train, validation or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// At most N questions (LoCoMo: from the fewest conversations of the split that hold N,
    /// evenly spaced over their questions, since every conversation played is streamed whole;
    /// LongMemEval: the first N) or N episodes (facts, multiobjective; default 100).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Environment knob override, repeatable (`memrl env knobs <bench>` lists them).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A TOML file with [judge] and/or [env] tables.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Judge model (HF directory or .gguf): adds J on LoCoMo and the official judge accuracy on LongMemEval.
    #[arg(long, value_name = "DIR|FILE.gguf")]
    pub judge_model: Option<PathBuf>,
    /// Most tokens per verdict (default 96 for LoCoMo J, 10 for LongMemEval as upstream).
    #[arg(long, value_name = "N")]
    pub judge_max_tokens: Option<usize>,
    /// The model's window for this evaluation (default: its max_position_embeddings).
    #[arg(long, value_name = "TOKENS")]
    pub max_context: Option<usize>,
    /// Most new tokens per agent turn (--policy model).
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Most new tokens per reader answer (the official LoCoMo runs use 32).
    #[arg(long, default_value_t = 32)]
    pub answer_tokens: usize,
    /// Retrieval depth of the baselines' contexts (memory search is capped at 20).
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// Sequences decoded at once.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Seed of episodes and scripted policies.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Result file (default: see below).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the report (without per-question rows) as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JudgeTable {
    model: Option<PathBuf>,
    max_new_tokens: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvTable {
    name: String,
    #[serde(default)]
    options: toml::Table,
}

/// The `[judge]` and `[env]` tables of a config file.
fn read_config(path: &Path, bench: BenchKind) -> anyhow::Result<(JudgeTable, Value)> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| anyhow!("{}: not valid TOML: {e}", path.display()))?;
    let judge = match table.get("judge") {
        Some(v) => {
            v.clone().try_into::<JudgeTable>().map_err(|e| anyhow!("{}: [judge]: {e}; expected model = \"PATH\", max_new_tokens = N", path.display()))?
        }
        None => JudgeTable::default(),
    };
    let knobs = match table.get("env") {
        Some(v) => {
            let env: EnvTable =
                v.clone().try_into().map_err(|e| anyhow!("{}: [env]: {e}; expected name = \"{}\" and an [env.options] table", path.display(), bench.name()))?;
            if env.name != bench.name() {
                bail!("{}: env.name = {:?} but --bench {}", path.display(), env.name, bench.name());
            }
            serde_json::to_value(env.options)?
        }
        None => Value::Null,
    };
    Ok((judge, knobs))
}

/// Builds the evaluation options from the arguments (and the config file).
pub fn options(args: &EvalArgs) -> anyhow::Result<EvalOptions> {
    let split: Split = args.split.parse().map_err(|e: String| anyhow!("--split: {e}"))?;
    let (judge_table, base_knobs) = match &args.config {
        Some(path) => read_config(path, args.bench)?,
        None => (JudgeTable::default(), Value::Null),
    };
    let judge_model = args.judge_model.clone().or(judge_table.model);
    let judge = judge_model.map(|model| JudgeOptions { model, max_new_tokens: args.judge_max_tokens.or(judge_table.max_new_tokens) });
    if let Some(limit) = args.limit
        && (limit == 0 || limit as u64 > super::MAX_EPISODES)
    {
        bail!("--limit {limit}: expected 1 to {}", super::MAX_EPISODES);
    }
    Ok(EvalOptions {
        bench: args.bench,
        policy: args.policy,
        checkpoint: args.checkpoint.clone(),
        split,
        limit: args.limit,
        base_knobs,
        set: args.set.clone(),
        judge,
        max_context: args.max_context,
        max_new_tokens: args.max_new_tokens,
        answer_tokens: args.answer_tokens,
        top_k: args.top_k,
        batch: args.batch,
        seed: args.seed,
        progress: !args.no_progress && !args.json,
    })
}

/// Runs `memrl eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let opts = options(&args)?;
    // Found now, not after the whole evaluation ran.
    if let Some(judge) = &opts.judge
        && !judge.model.exists()
    {
        bail!("judge model {} does not exist (--judge-model, or [judge] model in --config)", judge.model.display());
    }
    let path = args.out.clone().unwrap_or_else(|| default_output(args.bench, args.policy, args.checkpoint.as_deref()));
    let predictions = predictions_path(&path);
    let mut inputs: Vec<(&str, &Path)> = Vec::new();
    inputs.extend(args.checkpoint.as_deref().map(|p| ("--checkpoint", p)));
    inputs.extend(args.config.as_deref().map(|p| ("--config", p)));
    inputs.extend(opts.judge.as_ref().map(|j| ("the judge model", j.model.as_path())));
    check_outputs(&[("--out", &path), ("the predictions file", &predictions)], &inputs)?;
    let report = evaluate(&opts)?;
    let written = write_report(&report, &path)?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(o) = v.as_object_mut() {
            o.remove("rows");
            o.insert("written".into(), json!(written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>()));
        }
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        out!("{}", format_report(&report));
        for p in &written {
            outln!("written: {}", p.display());
        }
    }
    Ok(())
}

/// Writes the report (and, for the history benchmarks, the predictions file) atomically;
/// returns the paths written.
pub fn write_report(report: &EvalReport, path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    write_file_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    let mut written = vec![path.to_path_buf()];
    let lines: Vec<String> = report
        .rows
        .iter()
        .filter_map(|r| {
            let prediction = r.prediction.as_ref()?;
            match &r.key {
                QuestionKey::Locomo { sample_id, qa_index } => Some(json!({"sample_id": sample_id, "qa_index": qa_index, "prediction": prediction})),
                QuestionKey::LongMemEval { question_id } => Some(json!({"question_id": question_id, "hypothesis": prediction})),
                QuestionKey::Synthetic { .. } => None,
            }
        })
        .map(|v| v.to_string())
        .collect();
    if report.bench.is_history() {
        let p = predictions_path(path);
        let mut body = lines.join("\n");
        body.push('\n');
        write_file_atomic(&p, body.as_bytes()).with_context(|| format!("writing {}", p.display()))?;
        written.push(p);
    }
    Ok(written)
}

/// The human-readable summary `memrl eval` prints.
pub fn format_report(r: &EvalReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} {} split, policy {}: {}", r.bench.name(), r.split, r.policy.name(), r.protocol);
    if let Some(c) = &r.checkpoint {
        let step = r.step.map_or(String::new(), |n| format!(" (step {n})"));
        let _ = writeln!(s, "model: {c}{step}; greedy; window {} tokens", r.settings.max_context.unwrap_or(0));
    }
    let limit = r.limit.map_or(String::new(), |l| format!(" (--limit {l})"));
    let unanswered = r.rows.iter().filter(|q| q.prediction.is_none()).count();
    let _ = writeln!(s, "questions: {}{limit} in {} episodes; {unanswered} got no answer (scored 0)", r.questions, r.episodes);
    if let Some(j) = &r.judge_model {
        let unparsed = r.rows.iter().filter(|q| q.judge.as_ref().is_some_and(|v| !v.parsed)).count();
        let _ = writeln!(s, "judge: {j} (local model, not the published GPT-4o/-mini judge); {unparsed} verdicts unreadable (counted wrong)");
    }
    s.push('\n');
    if let Some(t) = &r.locomo {
        s.push_str(&format_locomo(t, r.judge_model.is_some()));
        let _ = writeln!(
            s,
            "F1 = official LoCoMo score (token F1, NLTK-Porter stems; category 1 partial multi-answer F1, category 5 'not mentioned' rule); BLEU-1 and J over categories 1-4"
        );
    }
    if let Some(t) = &r.longmemeval {
        s.push_str(&format_longmemeval(t));
    }
    if let Some(t) = &r.synthetic {
        let q = t.question_score.map_or("-".into(), |x| format!("{x:.3}"));
        let _ = writeln!(s, "episodes {}  reward {:.3}  task score {:.3}  per-question score {q}", t.episodes, t.reward, t.task_score);
    }
    let e = &r.efficiency;
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "tokens read / question: {:.0} (answering {:.0}, memory management {:.0}); generated / question: {:.1}; turns / question: {:.2}  [{}]",
        e.tokens_read_per_question,
        e.answer_tokens_read_per_question,
        e.memory_tokens_read_per_question,
        e.generated_tokens_per_question,
        e.turns_per_question,
        e.token_source
    );
    let _ = writeln!(
        s,
        "memory bank peak: {:.1} entries, {:.0} tokens; memory ops {:.1}, malformed/missing tool calls {:.1} (means per episode)",
        e.memory_peak_entries, e.memory_peak_tokens, e.memory_ops_per_episode, e.format_errors_per_episode
    );
    if let Some(c) = &e.reader_context {
        let _ = writeln!(
            s,
            "reader context: {:.1} items shown of {:.0} history turns ({:.0} tokens); prompt {:.0} tokens (means per question)",
            c.items_shown, c.history_turns, c.history_tokens, c.prompt_tokens
        );
    }
    let _ = writeln!(s, "wall {:.1} s (model generation {:.1} s, judge {:.1} s)", e.wall_seconds, e.generate_seconds, e.judge_seconds);
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}
