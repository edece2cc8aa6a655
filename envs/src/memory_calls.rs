//! The memory-bank tools as the environments apply them: parse a completion's `memory_add` /
//! `memory_update` / `memory_delete` / `noop` calls, apply each to the bank, charge format
//! errors and memory-budget violations to the ledger, and log one observation per call. One
//! implementation for every environment that keeps a bank (`facts` in bank mode and the
//! streaming engine behind `locomo` / `longmemeval`).

use crate::env::ActionLog;
use crate::ledger::{Budget, Ledger};
use crate::memory::{MemoryBank, MemoryError, MemoryOp};
use crate::tokens::TokenCounter;
use crate::tools::{Action, ToolSet};

/// The state one completion's memory calls act on.
pub struct MemoryTurn<'a> {
    /// The bank the calls edit.
    pub bank: &'a mut MemoryBank,
    /// The episode's ledger (operation counts, format errors, violations).
    pub ledger: &'a mut Ledger,
    /// The turn the calls are made at (stamped on the entries they write).
    pub turn: u32,
    /// Date label stored on entries written now, if the history has dates.
    pub date: Option<&'a str>,
}

/// Parses `completion` with `tools` (the memory tool set), applies every call in order and
/// appends one [`ActionLog`] per call (plus one for a call-count overflow and one when there is
/// no call at all); then records the bank's size in the ledger.
pub fn apply_memory_calls(tools: &ToolSet, state: MemoryTurn<'_>, completion: &str, counter: &dyn TokenCounter, logs: &mut Vec<ActionLog>) {
    let MemoryTurn { bank, ledger, turn, date } = state;
    let (actions, overflow) = tools.parse(completion);
    if let Some(e) = overflow {
        ledger.format_error();
        logs.push(ActionLog { action: None, ok: false, observation: format!("error: {e}") });
    }
    if actions.is_empty() {
        ledger.format_error();
        logs.push(ActionLog { action: None, ok: false, observation: "error: no tool call found; use noop() to leave the memory unchanged".into() });
    }
    for pa in actions {
        let log = match pa.result {
            Err(e) => {
                ledger.format_error();
                ActionLog { action: None, ok: false, observation: format!("error: {e}") }
            }
            Ok(action) => {
                let op = match &action {
                    Action::MemoryAdd { content } => MemoryOp::Add { content: content.clone() },
                    Action::MemoryUpdate { id, content } => MemoryOp::Update { id: id.clone(), content: content.clone() },
                    Action::MemoryDelete { id } => MemoryOp::Delete { id: id.clone() },
                    _ => MemoryOp::Noop,
                };
                let obs = apply_op(bank, ledger, &op, turn, date, counter);
                ActionLog { ok: !obs.starts_with("error"), action: Some(action), observation: obs }
            }
        };
        logs.push(log);
    }
    ledger.observe_memory(bank.entries().len(), bank.tokens());
}

/// Applies one memory op and returns its observation line.
fn apply_op(bank: &mut MemoryBank, ledger: &mut Ledger, op: &MemoryOp, turn: u32, date: Option<&str>, counter: &dyn TokenCounter) -> String {
    match bank.apply(op, turn, date, counter) {
        Ok(out) => {
            if out.violation {
                ledger.violation(Budget::Memory);
            }
            let ops = &mut ledger.stats.ops;
            match op {
                MemoryOp::Add { .. } => {
                    ops.add += 1;
                    format!("memory_add: added {}", out.id.unwrap_or_default())
                }
                MemoryOp::Update { id, .. } => {
                    ops.update += 1;
                    format!("memory_update: updated {id}")
                }
                MemoryOp::Delete { id } => {
                    ops.delete += 1;
                    format!("memory_delete: deleted {id}")
                }
                MemoryOp::Noop => {
                    ops.noop += 1;
                    "noop: memory unchanged".into()
                }
            }
        }
        Err(e @ (MemoryError::FullEntries(_) | MemoryError::FullTokens { .. })) => {
            ledger.violation(Budget::Memory);
            format!("error: {e}")
        }
        Err(e) => {
            ledger.format_error();
            format!("error: {e}")
        }
    }
}
