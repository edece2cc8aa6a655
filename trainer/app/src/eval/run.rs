//! One evaluation: options → models → episodes → scored questions → [`EvalReport`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use memrl_datasets::locomo::Category;
use memrl_datasets::scoring::locomo::bleu1;
use memrl_datasets::scoring::locomo::judge::{judge_prompt as locomo_judge_prompt, parse_judge_label};
use memrl_datasets::scoring::longmemeval::{JUDGE_MAX_TOKENS, judge_prompt_for, verdict_is_yes};
use memrl_envs::bm25::Bm25Params;
use memrl_envs::env::{Env, EpisodeEnd, Split, TaskId};
use memrl_envs::ledger::derive_seed;
use memrl_envs::policy::ScriptedPolicy;
use memrl_envs::registry::set_knob;
use memrl_envs::rollout::run_episode;
use memrl_envs::stream::StreamTask;
use memrl_envs::tokens::{ByteApproxCounter, TokenCounter};
use memrl_policies::BurnBackend;
use memrl_policies::engine::{Engine, EngineConfig};
use memrl_policies::model::Llama;
use memrl_policies::sampling::SamplingParams;
use memrl_policies::tokenizer::Tokenizer;
use memrl_policies::turn_stop::turn_stop_ids;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use super::bench::{BenchKind, OpenBench, QuestionKey};
use super::generator::EvalGenerator;
use super::judge::EngineJudge;
use super::policy::{EvalPolicy, Plan, plan};
use super::reader::{ReaderEnv, ReaderNote, ReaderSettings};
use super::report::{
    Efficiency, JudgeVerdict, LocomoTable, LongMemEvalTable, QuestionRow, ReaderContextStats, SyntheticTable, locomo_table, longmemeval_table,
};
use super::tracked::{Phase, QuestionProgress, Tracked, TurnRecord};
use memrl_rl::rollout::adapters::{TokenizerCodec, TokenizerCounter};
use memrl_rl::rollout::context::ChatCodec;
use memrl_rl::rollout::driver::{CompletionSource, RolloutLimits, play_timed};

/// The judge an evaluation uses.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeOptions {
    /// Model path (HF directory or `.gguf`).
    pub model: PathBuf,
    /// Most tokens of one verdict (default: 10 for LongMemEval as upstream, 96 for LoCoMo J,
    /// whose prompt asks for a sentence of reasoning before the JSON label).
    pub max_new_tokens: Option<usize>,
}

/// Default verdict length of Mem0's J prompt (a sentence, then `{"label": ...}`).
pub const LOCOMO_JUDGE_TOKENS: usize = 96;

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The benchmark.
    pub bench: BenchKind,
    /// The policy.
    pub policy: EvalPolicy,
    /// The model: the agent (`--policy model`) or the reader of the baselines.
    pub checkpoint: Option<PathBuf>,
    /// The split.
    pub split: Split,
    /// Questions (LoCoMo, LongMemEval) or episodes (synthetic) at most.
    pub limit: Option<usize>,
    /// Base env knobs (a config's `[env.options]`), `Null` for none.
    pub base_knobs: Value,
    /// `KEY=VALUE` knob overrides, applied after the base knobs.
    pub set: Vec<String>,
    /// The judge.
    pub judge: Option<JudgeOptions>,
    /// The model's window for this evaluation (default: the model's `max_position_embeddings`).
    pub max_context: Option<usize>,
    /// Most new tokens per agent turn.
    pub max_new_tokens: usize,
    /// Most new tokens per reader answer.
    pub answer_tokens: usize,
    /// Retrieval depth of reader contexts (memory search, BM25 over turns).
    pub top_k: usize,
    /// Sequences the engine decodes at once.
    pub batch: usize,
    /// Seed of episodes and scripted policies.
    pub seed: u64,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl EvalOptions {
    /// Options with the defaults `memrl eval` uses.
    pub fn new(bench: BenchKind, policy: EvalPolicy) -> Self {
        Self {
            bench,
            policy,
            checkpoint: None,
            split: Split::Test,
            limit: None,
            base_knobs: Value::Null,
            set: Vec::new(),
            judge: None,
            max_context: None,
            max_new_tokens: 256,
            answer_tokens: 32,
            top_k: 10,
            batch: 8,
            seed: 0,
            progress: false,
        }
    }
}

/// Settings an evaluation ran with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalSettings {
    /// The model window used (prompt + completion), when a model ran.
    pub max_context: Option<usize>,
    /// Most new tokens per agent turn.
    pub max_new_tokens: usize,
    /// Most new tokens per reader answer.
    pub answer_tokens: usize,
    /// Retrieval depth of reader contexts.
    pub top_k: usize,
    /// Engine batch.
    pub batch: usize,
    /// Always "greedy".
    pub decoding: &'static str,
    /// Seed.
    pub seed: u64,
}

/// The result of an evaluation (written as JSON; the tables are also printed).
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Benchmark.
    pub bench: BenchKind,
    /// Split.
    pub split: String,
    /// Policy.
    pub policy: EvalPolicy,
    /// Who builds the memory and who answers.
    pub protocol: String,
    /// The model (agent or reader).
    pub checkpoint: Option<String>,
    /// Its training step, when known.
    pub step: Option<u64>,
    /// The judge model, when one ran.
    pub judge_model: Option<String>,
    /// The `--limit` asked for.
    pub limit: Option<usize>,
    /// Questions every number below covers.
    pub questions: usize,
    /// Episodes played.
    pub episodes: usize,
    /// Settings.
    pub settings: EvalSettings,
    /// The environment knobs (eval defaults, config, `--set`, `--limit`).
    pub knobs: Value,
    /// LoCoMo table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locomo: Option<LocomoTable>,
    /// LongMemEval table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longmemeval: Option<LongMemEvalTable>,
    /// Synthetic table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<SyntheticTable>,
    /// Cost.
    pub efficiency: Efficiency,
    /// Caveats worth reading next to the numbers.
    pub notes: Vec<String>,
    /// The model's first completions of each phase (up to [`EXAMPLES_PER_PHASE`]), to see what it writes.
    pub examples: Vec<ExampleTurn>,
    /// Every question.
    pub rows: Vec<QuestionRow>,
}

/// Completions kept per phase in [`EvalReport::examples`].
pub const EXAMPLES_PER_PHASE: usize = 3;

/// One model completion kept as an example.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExampleTurn {
    /// Task index.
    pub task: u64,
    /// "memory" (reading the history, memory tools) or "answer".
    pub phase: &'static str,
    /// The completion as the environment received it.
    pub completion: String,
}

fn examples(played: &[Played]) -> Vec<ExampleTurn> {
    let mut out: Vec<ExampleTurn> = Vec::new();
    for p in played {
        for (text, record) in p.texts.iter().zip(&p.records) {
            let phase = if record.phase == Phase::Memory { "memory" } else { "answer" };
            if out.iter().filter(|e| e.phase == phase).count() < EXAMPLES_PER_PHASE {
                out.push(ExampleTurn { task: p.task.index, phase, completion: text.clone() });
            }
        }
    }
    out
}

/// A loaded model with what generation needs.
struct LoadedModel {
    model: Arc<Llama<BurnBackend>>,
    tokenizer: Arc<Tokenizer>,
    stop_ids: Vec<u32>,
    name: String,
}

fn load_model(path: &Path, what: &str) -> anyhow::Result<LoadedModel> {
    if !path.exists() {
        bail!("{what} {}: no such file or directory", path.display());
    }
    // A LoRA checkpoint of `memrl train` is evaluated through its merged export.
    let model_path = crate::train::policy::plain_model_path(path)?;
    let (model, tokenizer) = memrl_policies::load_policy(BurnBackend::flex(), &model_path).with_context(|| format!("loading {what} {}", path.display()))?;
    let stop_ids = turn_stop_ids(&tokenizer, &model.config, path).with_context(|| format!("{what} {}", path.display()))?;
    Ok(LoadedModel { model: Arc::new(model), tokenizer: Arc::new(tokenizer), stop_ids, name: path.display().to_string() })
}

/// Merges `over` into `base`, tables key by key.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Eval defaults ← base knobs ← `--set` ← `--limit`. LoCoMo evaluations include the
/// adversarial category and play one conversation per episode (the agent or the scripted
/// policy builds its memory once per conversation and answers its questions in turn), except
/// the reader protocol, which plays one question per episode so that the reader's answers
/// batch across questions (its model-free manager re-reads the history for each, at no model
/// cost; the oracle's memory then holds exactly that question's evidence).
fn resolve_knobs(opts: &EvalOptions, plan: &Plan) -> anyhow::Result<Value> {
    let mut knobs = serde_json::json!({});
    if opts.bench == BenchKind::Locomo {
        let per_episode = if matches!(plan, Plan::Reader { .. }) { 1 } else { 100_000 };
        knobs = serde_json::json!({"include_adversarial": true, "questions_per_episode": per_episode});
    }
    if !opts.base_knobs.is_null() {
        merge(&mut knobs, &opts.base_knobs);
    }
    for arg in &opts.set {
        let (key, value) = arg.split_once('=').ok_or_else(|| anyhow!("--set {arg}: expected KEY=VALUE"))?;
        set_knob(&mut knobs, key.trim(), value.trim()).with_context(|| format!("--set {arg}"))?;
    }
    if let (BenchKind::Locomo, Some(limit)) = (opts.bench, opts.limit) {
        knobs["max_questions"] = Value::from(limit);
    }
    Ok(knobs)
}

/// One episode to play.
struct Slot {
    task: TaskId,
    seed: u64,
    stream: Option<StreamTask>,
    env: Option<Box<dyn Env>>,
    log: Arc<Mutex<Vec<TurnRecord>>>,
    notes: Arc<Mutex<Vec<ReaderNote>>>,
}

/// One played episode.
struct Played {
    task: TaskId,
    stream: Option<StreamTask>,
    end: Option<EpisodeEnd>,
    records: Vec<TurnRecord>,
    /// (context tokens, completion tokens) per model turn.
    exact: Option<Vec<(usize, usize)>>,
    /// The model's completion texts, in turn order (model plans only).
    texts: Vec<String>,
    notes: Vec<ReaderNote>,
}

fn take<T: Default>(m: &Mutex<T>) -> T {
    m.lock().map(|mut g| std::mem::take(&mut *g)).unwrap_or_default()
}

/// Runs one evaluation. Writes nothing (see [`super::output`]).
pub fn evaluate(opts: &EvalOptions) -> anyhow::Result<EvalReport> {
    let started = Instant::now();
    let mut notes = Vec::new();
    let model = opts.checkpoint.as_deref().map(|p| load_model(p, "checkpoint")).transpose()?;
    let the_plan = plan(opts.policy, opts.bench, model.is_some(), opts.top_k)?;
    if model.is_some() && matches!(the_plan, Plan::Scripted(_)) {
        notes.push(format!("the checkpoint is not used: on {} the scripted {} policy plays every turn", opts.bench.name(), opts.policy.name()));
    }
    let window = match &model {
        Some(m) => {
            let max = m.model.config.max_position_embeddings;
            let w = opts.max_context.unwrap_or(max);
            if w > max || w < 64 {
                bail!("--max-context {w}: expected 64..={max} (the model's max_position_embeddings)");
            }
            Some(w)
        }
        None => None,
    };
    let counter: Arc<dyn TokenCounter> = match &model {
        Some(m) => Arc::new(TokenizerCounter(m.tokenizer.clone())),
        None => Arc::new(ByteApproxCounter::default()),
    };
    let knobs = resolve_knobs(opts, &the_plan)?;
    let bench = OpenBench::open(opts.bench, knobs.clone(), counter.clone()).with_context(|| format!("opening benchmark {}", opts.bench.name()))?;
    let tasks = bench.tasks(opts.split, opts.limit);
    if tasks.is_empty() {
        bail!("{} has no tasks in the {} split with these knobs", opts.bench.name(), opts.split);
    }

    let streams: Vec<Option<StreamTask>> = tasks.iter().map(|&t| bench.stream_task(t).transpose()).collect::<Result<_, _>>()?;
    let total_questions: Option<u64> = streams.iter().map(|s| s.as_ref().map(|s| s.questions.len() as u64)).sum();
    let bar = progress_bar(opts.progress, total_questions.unwrap_or(tasks.len() as u64), total_questions.is_some());
    let chunks: u64 = if matches!(the_plan, Plan::Reader { .. }) { 0 } else { streams.iter().flatten().map(|s| s.chunks.len() as u64).sum() };
    let progress = total_questions.is_some().then(|| QuestionProgress::new(bar.clone(), tasks.len() as u64, chunks));

    let mut slots = Vec::with_capacity(tasks.len());
    for (task, stream) in tasks.iter().zip(streams) {
        let seed = derive_seed(&[opts.seed, task.index]);
        let log = Arc::new(Mutex::new(Vec::new()));
        let reader_notes = Arc::new(Mutex::new(Vec::new()));
        let mut env = bench.env()?;
        if let Plan::Reader { manager, context } = the_plan {
            let stream = stream.clone().ok_or_else(|| anyhow!("the reader protocol needs a history benchmark"))?;
            let settings =
                ReaderSettings { context, manager, window: window.unwrap_or(usize::MAX), answer_tokens: opts.answer_tokens, bm25: Bm25Params::default() };
            env = Box::new(ReaderEnv::new(env, *task, stream, settings, counter.clone(), reader_notes.clone()));
        }
        let count = matches!(the_plan, Plan::Scripted(_)).then(|| counter.clone());
        let env: Box<dyn Env> = Box::new(Tracked::new(env, log.clone(), progress.clone(), count));
        slots.push(Slot { task: *task, seed, stream, env: Some(env), log, notes: reader_notes });
    }

    let mut generate_seconds = 0.0;
    let played: Vec<Played> = match (&the_plan, &model) {
        (Plan::Scripted(kind), _) => slots
            .into_par_iter()
            .map(|mut s| -> anyhow::Result<Played> {
                let mut env = s.env.take().expect("set above");
                let mut policy = ScriptedPolicy::new(*kind, s.seed);
                let result = run_episode(env.as_mut(), &mut policy, s.task, s.seed, false, 1_000_000).with_context(|| format!("task {:?}", s.task))?;
                if total_questions.is_none() {
                    bar.inc(1);
                }
                Ok(Played {
                    task: s.task,
                    stream: s.stream,
                    end: Some(result.end),
                    records: take(&s.log),
                    exact: None,
                    texts: Vec::new(),
                    notes: take(&s.notes),
                })
            })
            .collect::<anyhow::Result<_>>()?,
        (_, Some(m)) => {
            let window = window.expect("set with the model");
            let engine = Engine::new(m.model.clone(), None, EngineConfig { max_batch: opts.batch.max(1), max_seq_len: window })?;
            let mut generator = EvalGenerator::new(engine, SamplingParams::greedy(), m.stop_ids.clone(), Some(bar.clone()));
            let codec = TokenizerCodec::detect((*m.tokenizer).clone());
            let per_turn = if matches!(the_plan, Plan::Agent) { opts.max_new_tokens } else { opts.answer_tokens };
            let limits = RolloutLimits { max_turns: 1_000_000, max_new_tokens: per_turn, max_context_tokens: window };
            let mut out = Vec::with_capacity(slots.len());
            for (w, wave) in slots.chunks_mut(4 * opts.batch.max(1)).enumerate() {
                let envs = wave.iter_mut().map(|s| (s.env.take().expect("set above"), s.task, s.seed)).collect();
                let (trajectories, timings) =
                    play_timed(envs, &codec as &dyn ChatCodec, CompletionSource::Model(&mut generator), limits, derive_seed(&[opts.seed, w as u64]))?;
                generate_seconds += timings.generate_seconds;
                for (s, t) in wave.iter_mut().zip(trajectories) {
                    if total_questions.is_none() {
                        bar.inc(1);
                    }
                    let exact = t.turns.iter().map(|turn| (turn.context_ids.len(), turn.completion_ids.len())).collect();
                    let texts = t.turns.iter().map(|turn| turn.text.clone()).collect();
                    out.push(Played {
                        task: s.task,
                        stream: s.stream.take(),
                        end: t.end,
                        records: take(&s.log),
                        exact: Some(exact),
                        texts,
                        notes: take(&s.notes),
                    });
                }
            }
            out
        }
        (_, None) => unreachable!("plan() refuses model plans without a model"),
    };
    bar.finish_and_clear();

    let (mut rows, judge_inputs, synthetic) = score_rows(&bench, &played)?;
    let mut judge_seconds = 0.0;
    let mut judge_model = None;
    if let Some(j) = &opts.judge {
        if opts.bench.is_history() {
            let clock = Instant::now();
            let judge_llm = match (&model, opts.checkpoint.as_deref()) {
                (Some(m), Some(c)) if c == j.model.as_path() => {
                    LoadedModel { model: m.model.clone(), tokenizer: m.tokenizer.clone(), stop_ids: m.stop_ids.clone(), name: m.name.clone() }
                }
                _ => load_model(&j.model, "judge model")?,
            };
            let judge = EngineJudge::new(judge_llm.model, judge_llm.tokenizer, judge_llm.stop_ids, opts.batch, judge_llm.name.clone())?;
            run_judge(&judge, opts, &mut rows, &judge_inputs)?;
            judge_seconds = clock.elapsed().as_secs_f64();
            judge_model = Some(judge_llm.name);
        } else {
            notes.push("the judge was not used: synthetic benchmarks score answers exactly".into());
        }
    }

    let questions = rows.len();
    let efficiency = efficiency(&played, questions, model.is_some() && !matches!(the_plan, Plan::Scripted(_)), opts, started, generate_seconds, judge_seconds);
    if efficiency.episodes_cut_off > 0 {
        notes.push(format!(
            "{} episode(s) were cut off because their context outgrew the {}-token window; their questions count as 0",
            efficiency.episodes_cut_off,
            window.unwrap_or(0)
        ));
    }
    let report = EvalReport {
        bench: opts.bench,
        split: opts.split.to_string(),
        policy: opts.policy,
        protocol: the_plan.describe(opts.policy),
        checkpoint: model.as_ref().map(|m| m.name.clone()),
        step: opts.checkpoint.as_deref().and_then(super::output::checkpoint_step),
        judge_model,
        limit: opts.limit,
        questions,
        episodes: played.len(),
        settings: EvalSettings {
            max_context: window,
            max_new_tokens: opts.max_new_tokens,
            answer_tokens: opts.answer_tokens,
            top_k: opts.top_k,
            batch: opts.batch,
            decoding: "greedy",
            seed: opts.seed,
        },
        knobs,
        locomo: (opts.bench == BenchKind::Locomo).then(|| locomo_table(&rows)),
        longmemeval: (opts.bench == BenchKind::Longmemeval).then(|| longmemeval_table(&rows)),
        synthetic,
        efficiency,
        notes,
        examples: examples(&played),
        rows,
    };
    Ok(report)
}

fn progress_bar(show: bool, len: u64, questions: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let unit = if questions { "questions" } else { "episodes" };
    let style = ProgressStyle::with_template(&format!("{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{msg}}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// What the judge needs for one row: the prompt, or `None` when there is nothing to judge.
enum JudgeInput {
    /// LoCoMo J prompt.
    Locomo(String),
    /// LongMemEval official prompt.
    LongMemEval(String),
    /// Not judged (adversarial category, or a synthetic row).
    Skip,
    /// Judged wrong without asking: the question got no answer.
    NoAnswer,
}

fn score_rows(bench: &OpenBench, played: &[Played]) -> anyhow::Result<(Vec<QuestionRow>, Vec<JudgeInput>, Option<SyntheticTable>)> {
    let mut rows = Vec::new();
    let mut inputs = Vec::new();
    for p in played {
        match &p.stream {
            Some(stream) => {
                for (i, sq) in stream.questions.iter().enumerate() {
                    let meta = bench.question_meta(sq).ok_or_else(|| anyhow!("task {:?}: question {} is not in the dataset", p.task, i + 1))?;
                    let result = p.end.as_ref().and_then(|e| e.breakdown.questions.get(i));
                    let raw = result.and_then(|r| r.prediction.clone());
                    let prediction = raw.as_deref().map(|r| bench.resolve_prediction(sq, r));
                    let adversarial = meta.locomo_category == Some(Category::Adversarial);
                    let bleu = meta.locomo_category.filter(|_| !adversarial).map(|_| bleu1(prediction.as_deref().unwrap_or(""), &meta.gold));
                    inputs.push(match (&prediction, &meta.locomo_category, bench.longmemeval_question(sq)) {
                        (_, Some(_), _) if adversarial => JudgeInput::Skip,
                        (None, _, _) => JudgeInput::NoAnswer,
                        (Some(pr), Some(_), _) => JudgeInput::Locomo(locomo_judge_prompt(&meta.question, &meta.gold, pr)),
                        (Some(pr), None, Some(q)) => JudgeInput::LongMemEval(judge_prompt_for(q, pr)),
                        (Some(_), None, None) => JudgeInput::Skip,
                    });
                    rows.push(QuestionRow {
                        key: meta.key,
                        task: p.task.index,
                        category_id: meta.locomo_category.map(Category::id),
                        category: meta.locomo_category.map(|c| c.name().to_string()).or(meta.type_name),
                        question: meta.question,
                        gold: meta.gold,
                        raw_prediction: raw.filter(|r| Some(r) != prediction.as_ref()),
                        prediction,
                        score: result.map_or(0.0, |r| r.score),
                        bleu1: bleu,
                        judge: None,
                        abstention: meta.abstention,
                        cut_off: p.end.is_none(),
                    });
                }
            }
            None => {
                for q in p.end.iter().flat_map(|e| &e.breakdown.questions) {
                    inputs.push(JudgeInput::Skip);
                    rows.push(QuestionRow {
                        key: QuestionKey::Synthetic { task: p.task.index, id: q.id.clone() },
                        task: p.task.index,
                        category_id: None,
                        category: q.category.clone(),
                        question: q.question.clone(),
                        gold: q.gold.clone(),
                        prediction: q.prediction.clone(),
                        raw_prediction: None,
                        score: q.score,
                        bleu1: None,
                        judge: None,
                        abstention: false,
                        cut_off: false,
                    });
                }
            }
        }
    }
    let synthetic = played.iter().all(|p| p.stream.is_none()).then(|| {
        let n = played.len().max(1) as f64;
        SyntheticTable {
            episodes: played.len(),
            reward: played.iter().map(|p| p.end.as_ref().map_or(0.0, |e| e.reward)).sum::<f64>() / n,
            task_score: played.iter().map(|p| p.end.as_ref().map_or(0.0, |e| e.breakdown.task_score)).sum::<f64>() / n,
            question_score: (!rows.is_empty()).then(|| rows.iter().map(|r| r.score).sum::<f64>() / rows.len() as f64),
        }
    });
    Ok((rows, inputs, synthetic))
}

fn run_judge(judge: &EngineJudge, opts: &EvalOptions, rows: &mut [QuestionRow], inputs: &[JudgeInput]) -> anyhow::Result<()> {
    let mut asks: Vec<(usize, String, bool)> = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        match input {
            JudgeInput::Locomo(p) => asks.push((i, p.clone(), true)),
            JudgeInput::LongMemEval(p) => asks.push((i, p.clone(), false)),
            JudgeInput::NoAnswer => rows[i].judge = Some(JudgeVerdict { correct: false, parsed: true, reply: String::new() }),
            JudgeInput::Skip => {}
        }
    }
    let bar = progress_bar(opts.progress, asks.len() as u64, true);
    bar.set_message("judging");
    for chunk in asks.chunks(4 * opts.batch.max(1)) {
        let locomo = chunk.first().is_some_and(|c| c.2);
        let tokens = opts.judge.as_ref().and_then(|j| j.max_new_tokens).unwrap_or(if locomo { LOCOMO_JUDGE_TOKENS } else { JUDGE_MAX_TOKENS });
        let prompts: Vec<String> = chunk.iter().map(|c| c.1.clone()).collect();
        let replies = judge.judge_many(&prompts, tokens).context("judging answers")?;
        for ((i, _, is_locomo), reply) in chunk.iter().zip(replies) {
            let verdict = if *is_locomo {
                let label = parse_judge_label(&reply);
                JudgeVerdict { correct: label.is_some_and(|l| l.correct), parsed: label.is_some(), reply }
            } else {
                JudgeVerdict { correct: verdict_is_yes(&reply), parsed: true, reply }
            };
            rows[*i].judge = Some(verdict);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

fn efficiency(played: &[Played], questions: usize, exact: bool, opts: &EvalOptions, started: Instant, generate_seconds: f64, judge_seconds: f64) -> Efficiency {
    let (mut memory, mut answer, mut generated, mut turns) = (0usize, 0usize, 0usize, 0usize);
    for p in played {
        let contexts: Vec<(usize, usize)> = match &p.exact {
            Some(x) => x.clone(),
            None => p.records.iter().map(|r| (r.counted_tokens, 0)).collect(),
        };
        turns += contexts.len();
        for (i, (context, completion)) in contexts.iter().enumerate() {
            generated += completion;
            match p.records.get(i).map(|r| r.phase) {
                Some(Phase::Memory) => memory += context,
                _ => answer += context,
            }
        }
    }
    let q = questions.max(1) as f64;
    let ended: Vec<&EpisodeEnd> = played.iter().filter_map(|p| p.end.as_ref()).collect();
    let e = ended.len().max(1) as f64;
    let notes: Vec<ReaderNote> = played.iter().flat_map(|p| p.notes.iter().copied()).collect();
    let n = notes.len().max(1) as f64;
    Efficiency {
        token_source: if exact {
            "exact: the model's context token ids".into()
        } else if opts.checkpoint.is_some() {
            "counted: the model's tokenizer over the messages' text (no chat template)".into()
        } else {
            "approximate: bytes / 4 over the messages' text (no model)".into()
        },
        tokens_read_per_question: (memory + answer) as f64 / q,
        answer_tokens_read_per_question: answer as f64 / q,
        memory_tokens_read_per_question: memory as f64 / q,
        generated_tokens_per_question: generated as f64 / q,
        turns_per_question: turns as f64 / q,
        memory_peak_entries: ended.iter().map(|x| x.breakdown.stats.peak_memory_entries as f64).sum::<f64>() / e,
        memory_peak_tokens: ended.iter().map(|x| x.breakdown.stats.peak_memory_tokens as f64).sum::<f64>() / e,
        reader_context: (!notes.is_empty()).then(|| ReaderContextStats {
            history_turns: notes.iter().map(|x| x.history_turns as f64).sum::<f64>() / n,
            history_tokens: notes.iter().map(|x| x.history_tokens as f64).sum::<f64>() / n,
            items_shown: notes.iter().map(|x| x.items_shown as f64).sum::<f64>() / n,
            prompt_tokens: notes.iter().map(|x| x.prompt_tokens as f64).sum::<f64>() / n,
        }),
        memory_ops_per_episode: ended.iter().map(|x| f64::from(x.breakdown.stats.ops.memory_ops())).sum::<f64>() / e,
        format_errors_per_episode: ended.iter().map(|x| f64::from(x.breakdown.stats.format_errors)).sum::<f64>() / e,
        episodes_cut_off: played.iter().filter(|p| p.end.is_none()).count(),
        wall_seconds: started.elapsed().as_secs_f64(),
        generate_seconds,
        judge_seconds,
    }
}
