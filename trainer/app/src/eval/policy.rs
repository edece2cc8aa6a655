//! What `--policy` names, and how each policy plays a benchmark: the model as the agent, a
//! scripted policy alone, or a model-free memory (or raw history) read by the reader model.

use memrl_envs::env::ScriptedKind;

use super::bench::BenchKind;
use super::reader::ReaderContext;

/// A policy `memrl eval` can evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvalPolicy {
    /// The checkpoint is the agent: it manages the memory and answers with tool calls.
    Model,
    /// Oracle memory: exactly the evidence of the episode's questions.
    Oracle,
    /// Mem0-style heuristic memory manager.
    Heuristic,
    /// The whole history in the prompt, truncated to the reader's window (most recent turns).
    FullContext,
    /// BM25 retrieval over the history's turns, top-k into the prompt.
    Bm25Rag,
    /// No memory at all.
    NoMemory,
}

impl EvalPolicy {
    /// Every policy, in `--help` order.
    pub const ALL: [EvalPolicy; 6] =
        [EvalPolicy::Model, EvalPolicy::Oracle, EvalPolicy::Heuristic, EvalPolicy::FullContext, EvalPolicy::Bm25Rag, EvalPolicy::NoMemory];

    /// The policy `--policy` spells `name`.
    pub fn from_name(name: &str) -> Option<EvalPolicy> {
        EvalPolicy::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The name as `--policy` spells it.
    pub fn name(self) -> &'static str {
        match self {
            EvalPolicy::Model => "model",
            EvalPolicy::Oracle => "oracle",
            EvalPolicy::Heuristic => "heuristic",
            EvalPolicy::FullContext => "full-context",
            EvalPolicy::Bm25Rag => "bm25-rag",
            EvalPolicy::NoMemory => "no-memory",
        }
    }
}

/// How an evaluation is played.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plan {
    /// The model plays every turn of the environment (memory operations and answers).
    Agent,
    /// A scripted policy plays every turn; no model is involved.
    Scripted(ScriptedKind),
    /// A scripted manager builds the memory (model-free); the reader model answers each
    /// question from the context `context` gives it.
    Reader {
        /// Who writes the memory bank during the history (no-memory for raw-history contexts).
        manager: ScriptedKind,
        /// What the reader sees.
        context: ReaderContext,
    },
}

impl Plan {
    /// One line saying who builds the memory and who answers (printed and stored with the results).
    pub fn describe(&self, policy: EvalPolicy) -> String {
        match self {
            Plan::Agent => "the model manages its memory bank and answers with its own tool calls (memory_search, answer)".into(),
            Plan::Scripted(kind) => format!("scripted {} policy plays every turn (memory and answers); no model involved", kind_name(*kind)),
            Plan::Reader { manager, context } => {
                let memory = match (policy, context) {
                    (_, ReaderContext::FullHistory) => {
                        "no memory is built: the reader sees the raw history, truncated to its window (most recent turns kept)".to_string()
                    }
                    (_, ReaderContext::Bm25Turns { k }) => {
                        format!("no memory is built: BM25 over every turn of the history, the top {k} turns (by the question) go to the reader")
                    }
                    (EvalPolicy::NoMemory, ReaderContext::MemorySearch { .. }) => "no memory is kept: the reader sees only the question".to_string(),
                    (_, ReaderContext::MemorySearch { k }) => {
                        format!("memory built by the model-free {} manager; memory_search(question, k={k}) results go to the reader", kind_name(*manager))
                    }
                };
                format!("{memory}; the reader model writes every answer (free text, wrapped in answer())")
            }
        }
    }
}

fn kind_name(kind: ScriptedKind) -> &'static str {
    match kind {
        ScriptedKind::Oracle => "oracle",
        ScriptedKind::Heuristic => "heuristic (Mem0-style)",
        ScriptedKind::NoMemory => "no-memory",
        ScriptedKind::FullContext => "full-context",
    }
}

/// Why a policy cannot be evaluated as asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The policy needs a model and none was given.
    #[error("--policy {policy} needs a model: pass --checkpoint DIR|FILE.gguf{why}")]
    NeedsModel {
        /// The policy.
        policy: &'static str,
        /// Extra explanation.
        why: &'static str,
    },
    /// The policy has no meaning on this benchmark.
    #[error("--policy {policy} is only defined for the history benchmarks (locomo, longmemeval), not {bench}")]
    NotForBench {
        /// The policy.
        policy: &'static str,
        /// The benchmark.
        bench: &'static str,
    },
}

/// Decides how `policy` plays `bench`, given whether a model was loaded (`has_model`) and
/// the retrieval depth `top_k` of reader contexts. On the history benchmarks a model-free
/// manager's memory is read by the model when there is one; without a model the scripted
/// policy also answers (oracle: the gold; heuristic: its top search hit).
pub fn plan(policy: EvalPolicy, bench: BenchKind, has_model: bool, top_k: usize) -> Result<Plan, PlanError> {
    let history = bench.is_history();
    let scripted = |kind: ScriptedKind| -> Plan {
        if history && has_model { Plan::Reader { manager: kind, context: ReaderContext::MemorySearch { k: top_k.clamp(1, 20) } } } else { Plan::Scripted(kind) }
    };
    Ok(match policy {
        EvalPolicy::Model if has_model => Plan::Agent,
        EvalPolicy::Model => return Err(PlanError::NeedsModel { policy: policy.name(), why: "" }),
        EvalPolicy::Oracle => scripted(ScriptedKind::Oracle),
        EvalPolicy::Heuristic => scripted(ScriptedKind::Heuristic),
        EvalPolicy::NoMemory => scripted(ScriptedKind::NoMemory),
        EvalPolicy::FullContext if !history => Plan::Scripted(ScriptedKind::FullContext),
        EvalPolicy::FullContext if has_model => Plan::Reader { manager: ScriptedKind::NoMemory, context: ReaderContext::FullHistory },
        EvalPolicy::Bm25Rag if !history => return Err(PlanError::NotForBench { policy: policy.name(), bench: bench.name() }),
        EvalPolicy::Bm25Rag if has_model => Plan::Reader { manager: ScriptedKind::NoMemory, context: ReaderContext::Bm25Turns { k: top_k.max(1) } },
        EvalPolicy::FullContext | EvalPolicy::Bm25Rag => {
            return Err(PlanError::NeedsModel { policy: policy.name(), why: " (the reader model answers from the history)" });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_by_bench_and_model() {
        use BenchKind::*;
        assert_eq!(plan(EvalPolicy::Model, Locomo, true, 10), Ok(Plan::Agent));
        assert!(matches!(plan(EvalPolicy::Model, Facts, false, 10), Err(PlanError::NeedsModel { .. })));
        assert_eq!(plan(EvalPolicy::Oracle, Facts, true, 10), Ok(Plan::Scripted(ScriptedKind::Oracle)));
        assert_eq!(plan(EvalPolicy::Oracle, Locomo, false, 10), Ok(Plan::Scripted(ScriptedKind::Oracle)));
        assert_eq!(
            plan(EvalPolicy::Heuristic, Longmemeval, true, 50),
            Ok(Plan::Reader { manager: ScriptedKind::Heuristic, context: ReaderContext::MemorySearch { k: 20 } })
        );
        assert_eq!(plan(EvalPolicy::FullContext, Multiobjective, false, 10), Ok(Plan::Scripted(ScriptedKind::FullContext)));
        assert_eq!(plan(EvalPolicy::FullContext, Locomo, true, 10), Ok(Plan::Reader { manager: ScriptedKind::NoMemory, context: ReaderContext::FullHistory }));
        assert!(matches!(plan(EvalPolicy::Bm25Rag, Facts, true, 10), Err(PlanError::NotForBench { .. })));
        let err = plan(EvalPolicy::Bm25Rag, Locomo, false, 10).unwrap_err().to_string();
        assert!(err.contains("--checkpoint") && err.contains("bm25-rag"), "{err}");
        assert_eq!(
            plan(EvalPolicy::Bm25Rag, Locomo, true, 25),
            Ok(Plan::Reader { manager: ScriptedKind::NoMemory, context: ReaderContext::Bm25Turns { k: 25 } })
        );
    }
}
