//! Synthetic knowledge bases for `multiobjective`: fictional entities (so no world
//! knowledge helps), one gold document per question, confusable distractors (same
//! name, other kind; some mention the gold entity), and filler documents.

use crate::env::TaskId;
use crate::ledger::derive_seed;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SYLLABLES: &[&str] = &[
    "vor", "nak", "tel", "mir", "kas", "del", "bri", "zu", "lo", "pen", "rath", "quil", "sen", "dor", "ma", "ve", "li", "tor", "gan", "fen", "ul", "ost", "ka",
    "rin", "bel", "mon", "tha", "gri",
];
const KINDS: &[&str] = &["Institute", "Bridge", "Museum", "Library", "Observatory", "Theater", "Tower", "Academy"];
const FIRST: &[&str] = &["Lisa", "Omar", "Petra", "Jonas", "Mei", "Ravi", "Ines", "Tomas", "Aya", "Felix", "Nadia", "Karl", "Sofia", "Hugo", "Lena", "Marco"];
const FILLER: &[&str] = &[
    "It is a popular destination for school trips.",
    "Visitors often praise its quiet gardens.",
    "It was renovated after a storm damaged the roof.",
    "A small cafe operates near the main entrance.",
    "Local guides describe it as a hidden gem.",
    "Its archives hold letters from many travellers.",
];

/// What a document (and a question) is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Who founded it.
    Founder,
    /// Who designed it.
    Designer,
    /// Which city it is in.
    City,
    /// Year completed.
    Year,
}

const RELATIONS: [Relation; 4] = [Relation::Founder, Relation::Designer, Relation::City, Relation::Year];

impl Relation {
    fn sentence(self, entity: &str, value: &str) -> String {
        match self {
            Relation::Founder => format!("The {entity} was founded by {value}."),
            Relation::Designer => format!("The {entity} was designed by the architect {value}."),
            Relation::City => format!("The {entity} is located in the city of {value}."),
            Relation::Year => format!("Construction of the {entity} was completed in {value}."),
        }
    }

    fn question(self, entity: &str) -> String {
        match self {
            Relation::Founder => format!("Who founded the {entity}?"),
            Relation::Designer => format!("Who designed the {entity}?"),
            Relation::City => format!("In which city is the {entity} located?"),
            Relation::Year => format!("In which year was the {entity} completed?"),
        }
    }

    fn value(self, rng: &mut ChaCha8Rng) -> String {
        match self {
            Relation::Founder | Relation::Designer => format!("{} {}", FIRST.choose(rng).copied().unwrap_or("Ana"), word(rng, 2)),
            Relation::City => word(rng, 3),
            Relation::Year => rng.random_range(1600..2000).to_string(),
        }
    }
}

/// A capitalised made-up word of `n` syllables.
fn word(rng: &mut ChaCha8Rng, n: usize) -> String {
    let s: String = (0..n).map(|_| SYLLABLES.choose(rng).copied().unwrap_or("ka")).collect();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

/// One document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// Id shown in search results (`d7`).
    pub id: String,
    /// Text.
    pub text: String,
    /// Entity the document is about.
    pub entity: String,
    /// The fact it states.
    pub relation: Relation,
    /// The fact's value (what a reader extracts from it).
    pub value: String,
}

/// One question with its gold document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbQuestion {
    /// Question text.
    pub text: String,
    /// Gold answer.
    pub answer: String,
    /// Entity asked about.
    pub entity: String,
    /// Id of the document that answers it.
    pub gold_doc: String,
}

/// A generated task: documents and questions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbTask {
    /// Documents in collection order.
    pub docs: Vec<Doc>,
    /// Questions in order.
    pub questions: Vec<KbQuestion>,
}

/// Generation parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KbParams {
    /// Fewest questions per task.
    pub min_questions: usize,
    /// Most questions per task.
    pub max_questions: usize,
    /// Confusable documents per question.
    pub distractors_per_question: usize,
    /// Probability that a distractor also names the gold entity.
    pub confusable_prob: f64,
    /// Unrelated documents.
    pub filler_docs: usize,
    /// Dataset seed.
    pub seed: u64,
}

/// Builds the task for `id` deterministically.
pub fn generate(p: &KbParams, id: TaskId) -> KbTask {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(&[p.seed, id.split.code(), id.index, 0x4B42]));
    let n = rng.random_range(p.min_questions..=p.max_questions.max(p.min_questions));
    let mut raw: Vec<(String, Relation, String)> = Vec::new(); // (entity, relation, value) incl. gold first
    let mut questions = Vec::new();
    let mut used_names = Vec::new();
    for _ in 0..n {
        let mut base = word(&mut rng, 2);
        while used_names.contains(&base) {
            base = word(&mut rng, 3);
        }
        used_names.push(base.clone());
        let mut kinds = KINDS.to_vec();
        kinds.shuffle(&mut rng);
        let entity = format!("{base} {}", kinds[0]);
        let relation = *RELATIONS.choose(&mut rng).unwrap_or(&Relation::Year);
        let answer = relation.value(&mut rng);
        questions.push((relation.question(&entity), answer.clone(), entity.clone(), raw.len()));
        raw.push((entity.clone(), relation, answer.clone()));
        for d in 0..p.distractors_per_question {
            let other = format!("{base} {}", kinds[1 + d % (kinds.len() - 1)]);
            let mut value = relation.value(&mut rng);
            while value == answer {
                value = relation.value(&mut rng);
            }
            raw.push((other, relation, value));
        }
    }
    let first_filler = raw.len();
    for _ in 0..p.filler_docs {
        let mut base = word(&mut rng, 2);
        while used_names.contains(&base) {
            base = word(&mut rng, 3);
        }
        let entity = format!("{base} {}", KINDS.choose(&mut rng).copied().unwrap_or("Tower"));
        let relation = *RELATIONS.choose(&mut rng).unwrap_or(&Relation::City);
        raw.push((entity, relation, relation.value(&mut rng)));
    }
    let mut order: Vec<usize> = (0..raw.len()).collect();
    order.shuffle(&mut rng);
    let mut docs = vec![None; raw.len()];
    for (pos, &i) in order.iter().enumerate() {
        let (entity, relation, value) = &raw[i];
        let mut text = relation.sentence(entity, value);
        let is_distractor = i < first_filler && !questions.iter().any(|q| q.3 == i);
        if is_distractor && rng.random_bool(p.confusable_prob.clamp(0.0, 1.0)) {
            // Name the gold entity too, so keyword overlap alone cannot tell them apart.
            let gold = questions.iter().rev().find(|q| q.3 < i).map(|q| q.2.clone()).unwrap_or_default();
            text.push_str(&format!(" It is often confused with the {gold}."));
        }
        text.push(' ');
        text.push_str(FILLER.choose(&mut rng).copied().unwrap_or(""));
        docs[i] = Some(Doc { id: format!("d{}", pos + 1), text, entity: entity.clone(), relation: *relation, value: value.clone() });
    }
    let docs: Vec<Doc> = docs.into_iter().flatten().collect();
    let questions = questions.into_iter().map(|(text, answer, entity, i)| KbQuestion { text, answer, entity, gold_doc: docs[i].id.clone() }).collect();
    let mut docs = docs;
    docs.sort_by_key(|d| d.id[1..].parse::<usize>().unwrap_or(0));
    KbTask { docs, questions }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Split;

    fn params() -> KbParams {
        KbParams { min_questions: 1, max_questions: 8, distractors_per_question: 2, confusable_prob: 0.5, filler_docs: 8, seed: 0 }
    }

    #[test]
    fn deterministic_and_consistent() {
        for index in 0..50 {
            let id = TaskId { split: Split::Train, index };
            let t = generate(&params(), id);
            assert_eq!(t, generate(&params(), id));
            assert!((1..=8).contains(&t.questions.len()));
            assert_eq!(t.docs.len(), t.questions.len() * 3 + 8);
            for (i, d) in t.docs.iter().enumerate() {
                assert_eq!(d.id, format!("d{}", i + 1));
            }
            for q in &t.questions {
                let gold = t.docs.iter().find(|d| d.id == q.gold_doc).unwrap();
                assert_eq!(gold.entity, q.entity);
                assert_eq!(gold.value, q.answer);
                assert!(gold.text.contains(&q.answer));
            }
        }
    }
}
