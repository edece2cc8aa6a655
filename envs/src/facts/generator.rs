//! Synthetic entity-attribute fact streams for the `facts` environment.

use crate::env::TaskId;
use crate::ledger::derive_seed;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One attribute type: how it is stated, updated, retracted and asked about.
pub struct Attribute {
    /// Short key used in canonical memory lines (`Alice city: Paris`).
    pub key: &'static str,
    /// Question template (`{e}` = entity).
    pub question: &'static str,
    /// First statement (`{e}`, `{v}`).
    pub state: &'static str,
    /// Later statement of a new value.
    pub update: &'static str,
    /// Statement that the value no longer holds.
    pub retract: &'static str,
    /// Possible values (one word each).
    pub values: &'static [&'static str],
}

/// The attribute catalogue.
pub const ATTRIBUTES: &[Attribute] = &[
    Attribute {
        key: "city",
        question: "Where does {e} live?",
        state: "{e} lives in {v}.",
        update: "{e} moved to {v}.",
        retract: "{e} no longer lives in {v}.",
        values: &["Paris", "Rome", "Lima", "Oslo", "Cairo", "Tokyo", "Dublin", "Quito", "Austin", "Seoul", "Lisbon", "Nairobi"],
    },
    Attribute {
        key: "job",
        question: "What is {e}'s job?",
        state: "{e} works as a {v}.",
        update: "{e} is now a {v}.",
        retract: "{e} quit working as a {v}.",
        values: &["baker", "nurse", "pilot", "teacher", "lawyer", "plumber", "chef", "farmer", "dentist", "writer"],
    },
    Attribute {
        key: "pet",
        question: "What pet does {e} have?",
        state: "{e} has a {v}.",
        update: "{e} got a {v} instead.",
        retract: "{e} no longer has a {v}.",
        values: &["cat", "dog", "parrot", "rabbit", "hamster", "turtle", "goldfish", "lizard"],
    },
    Attribute {
        key: "sport",
        question: "Which sport does {e} play?",
        state: "{e} plays {v}.",
        update: "{e} switched to {v}.",
        retract: "{e} stopped playing {v}.",
        values: &["tennis", "soccer", "golf", "hockey", "rugby", "cricket", "baseball", "badminton"],
    },
    Attribute {
        key: "color",
        question: "What is {e}'s favorite color?",
        state: "{e}'s favorite color is {v}.",
        update: "{e}'s favorite color is now {v}.",
        retract: "{v} is no longer {e}'s favorite color.",
        values: &["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "pink", "gray"],
    },
    Attribute {
        key: "drink",
        question: "What does {e} drink?",
        state: "{e} drinks {v}.",
        update: "{e} now drinks {v}.",
        retract: "{e} gave up {v}.",
        values: &["coffee", "tea", "juice", "milk", "cocoa", "lemonade", "cider", "water"],
    },
    Attribute {
        key: "car",
        question: "What car does {e} drive?",
        state: "{e} drives a {v}.",
        update: "{e} now drives a {v}.",
        retract: "{e} sold the {v}.",
        values: &["Toyota", "Volvo", "Honda", "Ford", "Tesla", "Fiat", "Mazda", "Skoda"],
    },
    Attribute {
        key: "instrument",
        question: "What instrument does {e} play?",
        state: "{e} plays the {v}.",
        update: "{e} switched to the {v}.",
        retract: "{e} stopped playing the {v}.",
        values: &["piano", "violin", "guitar", "drums", "flute", "cello", "trumpet", "harp"],
    },
];

/// First names used for entities.
pub const NAMES: &[&str] = &[
    "Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Hector", "Irene", "Jack", "Karen", "Liam", "Maya", "Nina", "Oscar", "Paula", "Quinn", "Rosa",
    "Sam", "Tara", "Umar", "Vera", "Walt", "Xena", "Yusuf", "Zoe", "Aiden", "Bella", "Caleb", "Dana", "Elias", "Fiona", "Gavin", "Hana", "Ivan", "Jade",
    "Kofi", "Lena", "Milo", "Noor",
];

/// Answer expected when the last statement about a key retracted it.
pub const UNKNOWN: &str = "unknown";

/// What a statement does to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key now has this value.
    Set(String),
    /// The key's value (this one) no longer holds.
    Retract(String),
}

/// One sentence of the stream, with its structured meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Entity name.
    pub entity: String,
    /// Index into [`ATTRIBUTES`].
    pub attribute: usize,
    /// Effect on the key.
    pub change: Change,
    /// The sentence shown.
    pub text: String,
    /// True if the entity is one the task asks to track.
    pub tracked: bool,
}

impl Statement {
    /// The canonical memory line this statement implies (`Alice city: Rome`).
    pub fn canonical(&self) -> String {
        let value = match &self.change {
            Change::Set(v) => v.as_str(),
            Change::Retract(_) => UNKNOWN,
        };
        canonical_line(&self.entity, self.attribute, value)
    }
}

/// `Entity attribute: value`.
pub fn canonical_line(entity: &str, attribute: usize, value: &str) -> String {
    format!("{} {}: {}", entity, ATTRIBUTES[attribute].key, value)
}

/// Splits a canonical line into (entity, attribute index, value).
pub fn parse_canonical(line: &str) -> Option<(String, usize, String)> {
    let (head, value) = line.split_once(':')?;
    let (entity, key) = head.trim().split_once(' ')?;
    let attribute = ATTRIBUTES.iter().position(|a| a.key == key.trim())?;
    Some((entity.to_string(), attribute, value.trim().to_string()))
}

/// A question about a tracked key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactQuestion {
    /// Entity.
    pub entity: String,
    /// Attribute index.
    pub attribute: usize,
    /// Gold: the final value, or [`UNKNOWN`].
    pub gold: String,
    /// Question text.
    pub text: String,
}

/// A generated task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactsTask {
    /// Entities to track, in prompt order.
    pub tracked: Vec<String>,
    /// Chunks of statements.
    pub chunks: Vec<Vec<Statement>>,
    /// Questions, in order.
    pub questions: Vec<FactQuestion>,
}

/// Generation parameters (a subset of the env knobs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenParams {
    /// Names the people are drawn from.
    pub names: &'static [&'static str],
    /// Tracked entities.
    pub entities: usize,
    /// Untracked entities the distractor statements are about.
    pub distractor_entities: usize,
    /// Attributes per entity.
    pub attributes: usize,
    /// Updates after the first statement of each tracked key.
    pub updates_per_key: usize,
    /// Distractor statements per tracked statement.
    pub distractor_ratio: f64,
    /// Probability that a key's last statement retracts it.
    pub retraction_prob: f64,
    /// Questions asked (distinct tracked keys).
    pub questions: usize,
    /// Statements per chunk.
    pub chunk_size: usize,
    /// Dataset seed.
    pub seed: u64,
}

fn fill(template: &str, entity: &str, value: &str) -> String {
    template.replace("{e}", entity).replace("{v}", value)
}

/// Statement sequence for one key: first statement, then `n_updates` new values.
fn key_statements(rng: &mut ChaCha8Rng, entity: &str, attribute: usize, n_updates: usize, tracked: bool) -> Vec<Statement> {
    let attr = &ATTRIBUTES[attribute];
    let mut values: Vec<&str> = attr.values.to_vec();
    values.shuffle(rng);
    (0..=n_updates)
        .map(|i| {
            // Values repeat only if there are more updates than values; never twice in a row.
            let v = values[i % values.len()];
            let template = if i == 0 { attr.state } else { attr.update };
            Statement { entity: entity.into(), attribute, change: Change::Set(v.into()), text: fill(template, entity, v), tracked }
        })
        .collect()
}

/// The statement that retracts `last` (the key's current value).
fn retraction(entity: &str, attribute: usize, last: &str, tracked: bool) -> Statement {
    Statement { entity: entity.into(), attribute, change: Change::Retract(last.into()), text: fill(ATTRIBUTES[attribute].retract, entity, last), tracked }
}

fn last_value(s: &[Statement]) -> String {
    match s.last().map(|x| &x.change) {
        Some(Change::Set(v)) | Some(Change::Retract(v)) => v.clone(),
        None => String::new(),
    }
}

/// Builds the task for `id` deterministically.
pub fn generate(p: &GenParams, id: TaskId) -> FactsTask {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(&[p.seed, id.split.code(), id.index, 0xFAC7]));
    let names: Vec<&str> = p.names.choose_multiple(&mut rng, p.entities + p.distractor_entities).copied().collect();
    let mut attrs: Vec<usize> = (0..ATTRIBUTES.len()).collect();
    attrs.shuffle(&mut rng);
    attrs.truncate(p.attributes);
    let (tracked, distractors) = names.split_at(p.entities);

    let mut streams: Vec<Vec<Statement>> = Vec::new();
    let mut tracked_count = 0;
    for e in tracked {
        for &a in &attrs {
            let mut s = key_statements(&mut rng, e, a, p.updates_per_key, true);
            if rng.random_bool(p.retraction_prob.clamp(0.0, 1.0)) {
                s.push(retraction(e, a, &last_value(&s), true));
            }
            tracked_count += s.len();
            streams.push(s);
        }
    }
    // Distractor statements spread round-robin over distractor keys.
    let n_distractor = (p.distractor_ratio.max(0.0) * tracked_count as f64).round() as usize;
    let keys: Vec<(&str, usize)> = distractors.iter().flat_map(|e| attrs.iter().map(move |&a| (*e, a))).collect();
    if !keys.is_empty() && n_distractor > 0 {
        for (k, &(e, a)) in keys.iter().enumerate() {
            let n = n_distractor / keys.len() + usize::from(k < n_distractor % keys.len());
            if n > 0 {
                let mut s = key_statements(&mut rng, e, a, n - 1, false);
                if n > 1 && rng.random_bool(p.retraction_prob.clamp(0.0, 1.0)) {
                    s.pop();
                    let last = last_value(&s);
                    s.push(retraction(e, a, &last, false));
                }
                streams.push(s);
            }
        }
    }
    // Uniform random interleaving that keeps each key's order.
    let mut cursors = vec![0usize; streams.len()];
    let total: usize = streams.iter().map(Vec::len).sum();
    let mut order = Vec::with_capacity(total);
    for remaining in (1..=total).rev() {
        let mut pick = rng.random_range(0..remaining);
        for (i, s) in streams.iter().enumerate() {
            let left = s.len() - cursors[i];
            if pick < left {
                order.push(s[cursors[i]].clone());
                cursors[i] += 1;
                break;
            }
            pick -= left;
        }
    }
    let chunks = order.chunks(p.chunk_size.max(1)).map(<[Statement]>::to_vec).collect();

    let mut tracked_keys: Vec<(String, usize)> = tracked.iter().flat_map(|e| attrs.iter().map(move |&a| (e.to_string(), a))).collect();
    tracked_keys.shuffle(&mut rng);
    tracked_keys.truncate(p.questions);
    let questions = tracked_keys
        .into_iter()
        .map(|(entity, attribute)| {
            let last = streams.iter().flatten().filter(|s| s.entity == entity && s.attribute == attribute).last();
            let gold = match last.map(|s| &s.change) {
                Some(Change::Set(v)) => v.clone(),
                _ => UNKNOWN.to_string(),
            };
            let text = ATTRIBUTES[attribute].question.replace("{e}", &entity);
            FactQuestion { entity, attribute, gold, text }
        })
        .collect();
    FactsTask { tracked: tracked.iter().map(|s| s.to_string()).collect(), chunks, questions }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Split;

    fn params() -> GenParams {
        GenParams {
            names: NAMES,
            entities: 2,
            distractor_entities: 2,
            attributes: 2,
            updates_per_key: 2,
            distractor_ratio: 1.0,
            retraction_prob: 0.0,
            questions: 4,
            chunk_size: 6,
            seed: 1,
        }
    }

    #[test]
    fn deterministic_and_well_formed() {
        let id = TaskId { split: Split::Train, index: 3 };
        let a = generate(&params(), id);
        assert_eq!(a, generate(&params(), id));
        assert_ne!(a, generate(&params(), TaskId { split: Split::Test, index: 3 }));
        let n: usize = a.chunks.iter().map(Vec::len).sum();
        assert_eq!(n, 2 * 2 * 3 * 2);
        assert_eq!(a.chunks.len(), 4);
        assert_eq!(a.questions.len(), 4);
        for q in &a.questions {
            assert!(a.tracked.contains(&q.entity));
            // gold equals the last value stated for the key
            let last = a.chunks.iter().flatten().filter(|s| s.entity == q.entity && s.attribute == q.attribute).last().unwrap();
            assert_eq!(Change::Set(q.gold.clone()), last.change);
        }
    }

    #[test]
    fn retractions_make_gold_unknown() {
        let p = GenParams { retraction_prob: 1.0, ..params() };
        let t = generate(&p, TaskId { split: Split::Train, index: 0 });
        assert!(t.questions.iter().all(|q| q.gold == UNKNOWN));
        assert!(t.chunks.iter().flatten().any(|s| matches!(s.change, Change::Retract(_))));
    }

    #[test]
    fn canonical_round_trip() {
        assert_eq!(parse_canonical(&canonical_line("Alice", 1, "nurse")), Some(("Alice".into(), 1, "nurse".into())));
        assert_eq!(parse_canonical("garbage"), None);
    }
}
