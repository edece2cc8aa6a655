//! The benchmarks `memrl eval` runs: how each one's environments are built, which tasks an
//! evaluation covers, and where each question comes from in the dataset.

use std::sync::Arc;

use memrl_datasets::locomo::Category;
use memrl_envs::env::{Env, EnvError, Split, TaskId};
use memrl_envs::locomo::{LocomoEnv, LocomoKnobs, LocomoSource, resolve_option};
use memrl_envs::longmemeval::{LongMemEvalEnv, LongMemEvalKnobs};
use memrl_envs::registry::build_env;
use memrl_envs::stream::{StreamQuestion, StreamSource, StreamTask};
use memrl_envs::tokens::TokenCounter;
use serde::Serialize;
use serde_json::Value;

/// Episodes a synthetic benchmark plays when `--limit` is not given (its splits are unbounded).
pub const DEFAULT_SYNTHETIC_EPISODES: u64 = 100;

/// A benchmark (an environment of the registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchKind {
    /// LoCoMo conversations (official token-F1 score).
    Locomo,
    /// LongMemEval instances (judge or proxy accuracy).
    Longmemeval,
    /// Synthetic entity facts with updates.
    Facts,
    /// Synthetic knowledge base with search and a context budget.
    Multiobjective,
}

impl BenchKind {
    /// Every benchmark, in `--help` order.
    pub const ALL: [BenchKind; 4] = [BenchKind::Locomo, BenchKind::Longmemeval, BenchKind::Facts, BenchKind::Multiobjective];

    /// The benchmark of registry name `name`.
    pub fn from_name(name: &str) -> Option<BenchKind> {
        BenchKind::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The registry name.
    pub fn name(self) -> &'static str {
        match self {
            BenchKind::Locomo => "locomo",
            BenchKind::Longmemeval => "longmemeval",
            BenchKind::Facts => "facts",
            BenchKind::Multiobjective => "multiobjective",
        }
    }

    /// True for the benchmarks that stream a long history and then ask questions.
    pub fn is_history(self) -> bool {
        matches!(self, BenchKind::Locomo | BenchKind::Longmemeval)
    }
}

/// Where a question comes from, in the dataset's own terms.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum QuestionKey {
    /// A LoCoMo question: conversation and position in its `qa` list (as `memrl score` reads).
    Locomo {
        /// `conv-41`.
        sample_id: String,
        /// Index in the conversation's `qa` list.
        qa_index: usize,
    },
    /// A LongMemEval question.
    LongMemEval {
        /// The dataset's `question_id`.
        question_id: String,
    },
    /// A question of a synthetic episode.
    Synthetic {
        /// Task index in the split.
        task: u64,
        /// Question id within the episode (`q1`).
        id: String,
    },
}

/// What the report needs to know about one history-benchmark question.
#[derive(Debug, Clone, PartialEq)]
pub struct QuestionMeta {
    /// Its identity.
    pub key: QuestionKey,
    /// The question as the dataset writes it (no suffixes or options).
    pub question: String,
    /// The gold answer.
    pub gold: String,
    /// LoCoMo category.
    pub locomo_category: Option<Category>,
    /// LongMemEval question type name.
    pub type_name: Option<String>,
    /// LongMemEval abstention question (`_abs`).
    pub abstention: bool,
}

enum Probe {
    Locomo(LocomoEnv),
    LongMemEval(LongMemEvalEnv),
    Synthetic,
}

/// An opened benchmark: its resolved knobs and a probe environment for metadata.
pub struct OpenBench {
    kind: BenchKind,
    knobs: Value,
    counter: Arc<dyn TokenCounter>,
    probe: Probe,
}

fn knobs_error(e: serde_json::Error, env: &str) -> EnvError {
    EnvError::Knobs { env: env.into(), message: e.to_string() }
}

impl OpenBench {
    /// Loads the benchmark with `knobs` (missing keys take the env's defaults).
    pub fn open(kind: BenchKind, knobs: Value, counter: Arc<dyn TokenCounter>) -> Result<Self, EnvError> {
        let typed = |v: &Value| if v.is_null() { Value::Object(Default::default()) } else { v.clone() };
        let probe = match kind {
            BenchKind::Locomo => {
                let k: LocomoKnobs = serde_json::from_value(typed(&knobs)).map_err(|e| knobs_error(e, "locomo"))?;
                Probe::Locomo(LocomoEnv::new(k, counter.clone())?)
            }
            BenchKind::Longmemeval => {
                let k: LongMemEvalKnobs = serde_json::from_value(typed(&knobs)).map_err(|e| knobs_error(e, "longmemeval"))?;
                Probe::LongMemEval(LongMemEvalEnv::new(k, counter.clone())?)
            }
            BenchKind::Facts | BenchKind::Multiobjective => {
                build_env(kind.name(), knobs.clone(), counter.clone())?;
                Probe::Synthetic
            }
        };
        Ok(Self { kind, knobs, counter, probe })
    }

    /// The benchmark.
    pub fn kind(&self) -> BenchKind {
        self.kind
    }

    /// The resolved knobs (as given; the env fills in its defaults for missing keys).
    pub fn knobs(&self) -> &Value {
        &self.knobs
    }

    /// The tasks an evaluation of `split` covers: every task of a history benchmark (LoCoMo's
    /// question cap is its `max_questions` knob), at most `limit` for LongMemEval, and the
    /// first `limit` (default [`DEFAULT_SYNTHETIC_EPISODES`]) of a synthetic one.
    pub fn tasks(&self, split: Split, limit: Option<usize>) -> Vec<TaskId> {
        let count = match &self.probe {
            Probe::Locomo(e) => e.source().task_count(split),
            Probe::LongMemEval(e) => {
                let n = e.source().task_count(split);
                limit.map_or(n, |l| n.min(l as u64))
            }
            Probe::Synthetic => limit.map_or(DEFAULT_SYNTHETIC_EPISODES, |l| l as u64),
        };
        (0..count).map(|index| TaskId { split, index }).collect()
    }

    /// A fresh environment instance.
    pub fn env(&self) -> Result<Box<dyn Env>, EnvError> {
        build_env(self.kind.name(), self.knobs.clone(), self.counter.clone())
    }

    /// The history task behind `id` (history benchmarks only).
    pub fn stream_task(&self, id: TaskId) -> Option<Result<StreamTask, EnvError>> {
        match &self.probe {
            Probe::Locomo(e) => Some(e.source().task(id)),
            Probe::LongMemEval(e) => Some(e.source().task(id)),
            Probe::Synthetic => None,
        }
    }

    /// Where `q` comes from and what it asks.
    pub fn question_meta(&self, q: &StreamQuestion) -> Option<QuestionMeta> {
        match &self.probe {
            Probe::Locomo(e) => {
                let (c, i) = LocomoSource::locate(q);
                let sample = e.source().dataset().samples.get(c)?;
                let qa = sample.qa.get(i)?;
                Some(QuestionMeta {
                    key: QuestionKey::Locomo { sample_id: sample.sample_id.clone(), qa_index: i },
                    question: qa.question.clone(),
                    gold: qa.gold().to_string(),
                    locomo_category: Some(qa.category),
                    type_name: None,
                    abstention: false,
                })
            }
            Probe::LongMemEval(e) => {
                let item = e.source().question(q)?;
                Some(QuestionMeta {
                    key: QuestionKey::LongMemEval { question_id: item.question_id.clone() },
                    question: item.question.clone(),
                    gold: item.answer.clone(),
                    locomo_category: None,
                    type_name: Some(item.question_type.name().to_string()),
                    abstention: item.is_abstention(),
                })
            }
            Probe::Synthetic => None,
        }
    }

    /// The prediction as the official scorer reads it: a one- or three-character reply to a
    /// LoCoMo category-5 question becomes the option it picks; otherwise unchanged.
    pub fn resolve_prediction(&self, q: &StreamQuestion, raw: &str) -> String {
        match &self.probe {
            Probe::Locomo(_) if q.category.as_deref() == Some(Category::Adversarial.name()) => resolve_option(&q.text, raw),
            _ => raw.to_string(),
        }
    }

    /// The LongMemEval dataset question behind `q` (for the official judge prompt).
    pub fn longmemeval_question(&self, q: &StreamQuestion) -> Option<&memrl_datasets::longmemeval::LongMemEvalQuestion> {
        match &self.probe {
            Probe::LongMemEval(e) => e.source().question(q),
            _ => None,
        }
    }
}
