//! Model-free policies for `facts`, emitting real tool-call text.
//!
//! - oracle: knows which keys will be asked (hidden) and keeps exactly their current values.
//! - heuristic (Mem0-style): extracts every fact of the chunk (a perfect stand-in for
//!   Mem0's LLM extractor), updates an entry with the same person and attribute, deletes
//!   on retraction, adds otherwise; when the bank is full it evicts the least recently
//!   updated entry. It ignores the "track these people" instruction, as Mem0 would.
//! - no-memory: `noop()` and "unknown" answers.
//! - full-context: stores every statement and never edits or deletes, ignoring capacity.

use super::generator::{Change, Statement, UNKNOWN, canonical_line, parse_canonical};
use super::{Episode, Eviction, FactsKnobs, MemoryMode};
use crate::env::ScriptedKind;
use crate::tokens::TokenCounter;
use crate::tools::Action;
use rand::{Rng, RngCore};

/// Final change per key within a chunk, in order of first appearance.
fn final_changes<'a>(chunk: &'a [Statement], mut keep: impl FnMut(&Statement) -> bool) -> Vec<(&'a str, usize, &'a Change)> {
    let mut out: Vec<(&str, usize, &Change)> = Vec::new();
    for s in chunk.iter().filter(|s| keep(s)) {
        match out.iter_mut().find(|(e, a, _)| *e == s.entity && *a == s.attribute) {
            Some(slot) => slot.2 = &s.change,
            None => out.push((&s.entity, s.attribute, &s.change)),
        }
    }
    out
}

struct SimEntry {
    id: Option<String>,
    key: Option<(String, usize)>,
    value: String,
    updated: u32,
}

/// How `bank_ops` handles a new key when the bank is full.
enum WhenFull<'r> {
    /// Skip the new key.
    Skip,
    /// Delete the least recently updated entry.
    EvictOldest,
    /// Delete an entry drawn from this RNG.
    EvictRandom(&'r mut dyn RngCore),
}

/// Memory-bank operations for one chunk.
fn bank_ops(ep: &Episode, keep: impl FnMut(&Statement) -> bool, mut when_full: WhenFull, capacity: usize) -> Vec<Action> {
    let mut sim: Vec<SimEntry> = ep
        .bank
        .entries()
        .iter()
        .map(|e| {
            let parsed = parse_canonical(&e.content);
            SimEntry {
                id: Some(e.id.clone()),
                key: parsed.as_ref().map(|(n, a, _)| (n.clone(), *a)),
                value: parsed.map(|p| p.2).unwrap_or_default(),
                updated: e.updated_turn,
            }
        })
        .collect();
    let now = ep.turn + 1;
    let mut actions = Vec::new();
    let Some(chunk) = ep.task.chunks.get(ep.chunk) else { return actions };
    for (entity, attribute, change) in final_changes(chunk, keep) {
        let pos = sim.iter().position(|s| s.key.as_ref().is_some_and(|(n, a)| n == entity && *a == attribute));
        match (change, pos) {
            (Change::Set(v), Some(i)) => {
                if sim[i].value != *v
                    && let Some(id) = sim[i].id.clone()
                {
                    actions.push(Action::MemoryUpdate { id, content: canonical_line(entity, attribute, v) });
                    sim[i].value = v.clone();
                    sim[i].updated = now;
                }
            }
            (Change::Set(v), None) => {
                if sim.len() >= capacity {
                    let candidates = sim.iter().enumerate().filter(|(_, s)| s.id.is_some() && s.updated < now);
                    let victim = match &mut when_full {
                        WhenFull::Skip => continue,
                        WhenFull::EvictOldest => candidates.min_by_key(|(i, s)| (s.updated, *i)).map(|(i, _)| i),
                        WhenFull::EvictRandom(rng) => {
                            let ids: Vec<usize> = candidates.map(|(i, _)| i).collect();
                            (!ids.is_empty()).then(|| ids[rng.random_range(0..ids.len())])
                        }
                    };
                    let Some(i) = victim else { continue };
                    if let Some(id) = sim.remove(i).id {
                        actions.push(Action::MemoryDelete { id });
                    }
                }
                actions.push(Action::MemoryAdd { content: canonical_line(entity, attribute, v) });
                sim.push(SimEntry { id: None, key: Some((entity.to_string(), attribute)), value: v.clone(), updated: now });
            }
            (Change::Retract(_), Some(i)) => {
                if let Some(id) = sim.remove(i).id {
                    actions.push(Action::MemoryDelete { id });
                }
            }
            (Change::Retract(_), None) => {}
        }
    }
    actions
}

/// The heuristic manager's operations: every statement (but those its `heuristic_skip` draw
/// ignores), evicting as `heuristic_eviction` says. The draws come from `rng` only when the
/// knobs ask for noise, so the default heuristic consumes no randomness.
fn heuristic_ops(ep: &Episode, knobs: &FactsKnobs, rng: &mut dyn RngCore) -> Vec<Action> {
    let skip = knobs.heuristic_skip;
    // Draw the skips first, one per statement in the order `final_changes` asks, then the evictions.
    let chunk = ep.task.chunks.get(ep.chunk).map(Vec::as_slice).unwrap_or_default();
    let kept: Vec<bool> = chunk.iter().map(|_| skip == 0.0 || !rng.random_bool(skip)).collect();
    let mut next = kept.iter().copied();
    let keep = move |_: &Statement| next.next().unwrap_or(true);
    match knobs.heuristic_eviction {
        Eviction::Oldest => bank_ops(ep, keep, WhenFull::EvictOldest, knobs.capacity),
        Eviction::Random => bank_ops(ep, keep, WhenFull::EvictRandom(rng), knobs.capacity),
    }
}

/// Every statement of the chunk as a new entry, skipping exact duplicates.
fn store_everything(ep: &Episode) -> Vec<Action> {
    let mut seen: Vec<String> = ep.bank.entries().iter().map(|e| e.content.clone()).collect();
    let mut actions = Vec::new();
    for s in ep.task.chunks.get(ep.chunk).map(Vec::as_slice).unwrap_or_default() {
        let line = s.canonical();
        if !seen.contains(&line) {
            seen.push(line.clone());
            actions.push(Action::MemoryAdd { content: line });
        }
    }
    actions
}

/// Lines of an overwrite memory as (entity, attribute, value), in order.
fn pad_lines(text: &str) -> Vec<(String, usize, String)> {
    text.lines().filter_map(parse_canonical).collect()
}

/// New overwrite-memory text after applying this chunk.
fn overwrite_text(ep: &Episode, kind: ScriptedKind, knobs: &FactsKnobs, counter: &dyn TokenCounter) -> String {
    let chunk = ep.task.chunks.get(ep.chunk).map(Vec::as_slice).unwrap_or_default();
    match kind {
        ScriptedKind::NoMemory => String::new(),
        ScriptedKind::FullContext => {
            let mut lines: Vec<String> = ep.pad.text().lines().map(str::to_string).collect();
            lines.extend(chunk.iter().map(Statement::canonical));
            lines.join("\n")
        }
        ScriptedKind::Oracle | ScriptedKind::Heuristic => {
            let asked = |s: &Statement| ep.task.questions.iter().any(|q| q.entity == s.entity && q.attribute == s.attribute);
            let keep = |s: &Statement| kind == ScriptedKind::Heuristic || asked(s);
            // Most recently changed first.
            let mut lines = pad_lines(ep.pad.text());
            for (e, a, change) in final_changes(chunk, keep) {
                lines.retain(|(n, x, _)| !(n == e && *x == a));
                if let Change::Set(v) = change {
                    lines.insert(0, (e.to_string(), a, v.clone()));
                }
            }
            let mut out = String::new();
            for (e, a, v) in lines {
                let candidate = if out.is_empty() { canonical_line(&e, a, &v) } else { format!("{out}\n{}", canonical_line(&e, a, &v)) };
                if counter.count(&candidate) > knobs.memory_tokens {
                    break;
                }
                out = candidate;
            }
            out
        }
    }
}

/// The value memory holds for a key (the last matching entry or line), if any.
fn recall(ep: &Episode, mode: MemoryMode, entity: &str, attribute: usize) -> Option<String> {
    let lines: Vec<(String, usize, String)> = match mode {
        MemoryMode::Bank => ep.bank.entries().iter().filter_map(|e| parse_canonical(&e.content)).collect(),
        MemoryMode::Overwrite => pad_lines(ep.pad.text()),
    };
    // Overwrite memories list the newest first; banks append the newest last.
    let mut it = lines.into_iter().filter(|(n, a, _)| n == entity && *a == attribute);
    let hit = match mode {
        MemoryMode::Bank => it.last(),
        MemoryMode::Overwrite => it.next(),
    };
    hit.map(|(_, _, v)| v)
}

/// The scripted completion for the current turn.
pub(super) fn completion(kind: ScriptedKind, ep: &Episode, knobs: &FactsKnobs, counter: &dyn TokenCounter, rng: &mut dyn RngCore) -> String {
    if ep.chunk < ep.task.chunks.len() {
        if knobs.memory_mode == MemoryMode::Overwrite {
            return overwrite_text(ep, kind, knobs, counter);
        }
        let asked = |s: &Statement| ep.task.questions.iter().any(|q| q.entity == s.entity && q.attribute == s.attribute);
        let actions = match kind {
            ScriptedKind::Oracle => bank_ops(ep, asked, WhenFull::Skip, knobs.capacity),
            ScriptedKind::Heuristic => heuristic_ops(ep, knobs, rng),
            ScriptedKind::NoMemory => Vec::new(),
            ScriptedKind::FullContext => store_everything(ep),
        };
        let actions = if actions.is_empty() { vec![Action::Noop] } else { actions };
        return actions.iter().map(Action::to_call_text).collect();
    }
    let mut out = String::new();
    for q in super::shown_questions(ep, knobs) {
        let fq = ep.task.questions.iter().zip(&ep.sheet.questions).find(|(_, sq)| sq.id == q.id).map(|(fq, _)| fq);
        let text = match (kind, fq) {
            (ScriptedKind::NoMemory, _) | (_, None) => UNKNOWN.to_string(),
            (_, Some(fq)) => recall(ep, knobs.memory_mode, &fq.entity, fq.attribute).unwrap_or_else(|| UNKNOWN.to_string()),
        };
        out.push_str(&Action::Answer { question_id: q.id.clone(), text }.to_call_text());
    }
    out
}
