//! Hand-written deserialisers for the parts of `locomo10.json` whose keys are dynamic
//! (`session_N`, `events_session_N`, speaker names). Errors raised here get their JSON
//! path from `serde_path_to_error`, so they only say what was found and what was expected.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::answer::AnswerText;

use super::{
    Category, Conversation, Evidence, LocomoDate, LocomoDateTime, Observation, QaItem, Session, SessionEvents, SessionObservations, SessionSummary, Turn,
};

/// `N` from `<prefix>N<suffix>` with N a positive decimal number.
fn session_number(key: &str, prefix: &str, suffix: &str) -> Option<u32> {
    let digits = key.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl<'de> Deserialize<'de> for Conversation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ConversationVisitor)
    }
}

struct ConversationVisitor;

impl<'de> Visitor<'de> for ConversationVisitor {
    type Value = Conversation;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a conversation object with speaker_a, speaker_b, session_<N> and session_<N>_date_time")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Conversation, A::Error> {
        let mut speaker_a = None;
        let mut speaker_b = None;
        let mut turns: BTreeMap<u32, Vec<Turn>> = BTreeMap::new();
        let mut dates: BTreeMap<u32, LocomoDateTime> = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let duplicate = || de::Error::custom(format!("duplicate key {key:?}"));
            if key == "speaker_a" {
                if speaker_a.replace(map.next_value::<String>()?).is_some() {
                    return Err(duplicate());
                }
            } else if key == "speaker_b" {
                if speaker_b.replace(map.next_value::<String>()?).is_some() {
                    return Err(duplicate());
                }
            } else if let Some(n) = session_number(&key, "session_", "_date_time") {
                if dates.insert(n, map.next_value()?).is_some() {
                    return Err(duplicate());
                }
            } else if let Some(n) = session_number(&key, "session_", "") {
                if turns.insert(n, map.next_value()?).is_some() {
                    return Err(duplicate());
                }
            } else {
                return Err(de::Error::custom(format!("unexpected key {key:?}; expected speaker_a, speaker_b, session_<N> or session_<N>_date_time")));
            }
        }
        let speaker_a = speaker_a.ok_or_else(|| de::Error::missing_field("speaker_a"))?;
        let speaker_b = speaker_b.ok_or_else(|| de::Error::missing_field("speaker_b"))?;
        let mut sessions = Vec::with_capacity(turns.len());
        for (number, turns) in turns {
            let date_time = dates
                .remove(&number)
                .ok_or_else(|| de::Error::custom(format!("session_{number} has no session_{number}_date_time; expected every session to have a date")))?;
            sessions.push(Session { number, date_time, turns });
        }
        Ok(Conversation { speaker_a, speaker_b, sessions, orphan_session_dates: dates.into_iter().collect() })
    }
}

/// Deserialises an object whose keys are `<prefix>N<suffix>` into `(N, value)` pairs,
/// ascending by N.
struct SessionKeyed<V> {
    prefix: &'static str,
    suffix: &'static str,
    value: PhantomData<V>,
}

impl<'de, V: Deserialize<'de>> Visitor<'de> for SessionKeyed<V> {
    type Value = Vec<(u32, V)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with keys {}<N>{}", self.prefix, self.suffix)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let Some(n) = session_number(&key, self.prefix, self.suffix) else {
                return Err(de::Error::custom(format!("unexpected key {key:?}; expected {}<N>{}", self.prefix, self.suffix)));
            };
            if entries.insert(n, map.next_value::<V>()?).is_some() {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
        }
        Ok(entries.into_iter().collect())
    }
}

fn session_keyed<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
    deserializer: D,
    prefix: &'static str,
    suffix: &'static str,
) -> Result<Vec<(u32, V)>, D::Error> {
    deserializer.deserialize_map(SessionKeyed { prefix, suffix, value: PhantomData })
}

/// `event_summary`: `events_session_N` -> `{speaker: [event], "date": "8 May, 2023"}`.
pub(super) fn event_summary<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SessionEvents>, D::Error> {
    let entries: Vec<(u32, RawSessionEvents)> = session_keyed(deserializer, "events_session_", "")?;
    Ok(entries.into_iter().map(|(session, raw)| SessionEvents { session, date: raw.date, by_speaker: raw.by_speaker }).collect())
}

/// `observation`: `session_N_observation` -> `{speaker: [[fact, evidence], ...]}`.
pub(super) fn observations<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SessionObservations>, D::Error> {
    let entries: Vec<(u32, SpeakerLists<Observation>)> = session_keyed(deserializer, "session_", "_observation")?;
    Ok(entries.into_iter().map(|(session, lists)| SessionObservations { session, by_speaker: lists.0 }).collect())
}

/// `session_summary`: `session_N_summary` -> summary text.
pub(super) fn session_summaries<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SessionSummary>, D::Error> {
    let entries: Vec<(u32, String)> = session_keyed(deserializer, "session_", "_summary")?;
    Ok(entries.into_iter().map(|(session, summary)| SessionSummary { session, summary }).collect())
}

/// One `events_session_N` object: the `date` key plus one event list per speaker.
struct RawSessionEvents {
    date: LocomoDate,
    by_speaker: Vec<(String, Vec<String>)>,
}

impl<'de> Deserialize<'de> for RawSessionEvents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EventsVisitor;
        impl<'de> Visitor<'de> for EventsVisitor {
            type Value = RawSessionEvents;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object with a \"date\" and one event list per speaker")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSessionEvents, A::Error> {
                let mut date = None;
                let mut by_speaker: Vec<(String, Vec<String>)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "date" {
                        if date.replace(map.next_value::<LocomoDate>()?).is_some() {
                            return Err(de::Error::custom("duplicate key \"date\""));
                        }
                    } else {
                        let events = map.next_value::<Vec<String>>()?;
                        if by_speaker.iter().any(|(speaker, _)| *speaker == key) {
                            return Err(de::Error::custom(format!("duplicate key {key:?}")));
                        }
                        by_speaker.push((key, events));
                    }
                }
                let date = date.ok_or_else(|| de::Error::missing_field("date"))?;
                Ok(RawSessionEvents { date, by_speaker })
            }
        }
        deserializer.deserialize_map(EventsVisitor)
    }
}

/// An object `{speaker: [item, ...]}` kept in file order.
struct SpeakerLists<T>(Vec<(String, Vec<T>)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SpeakerLists<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListsVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListsVisitor<T> {
            type Value = SpeakerLists<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object with one list per speaker")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SpeakerLists<T>, A::Error> {
                let mut lists: Vec<(String, Vec<T>)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let items = map.next_value::<Vec<T>>()?;
                    if lists.iter().any(|(speaker, _)| *speaker == key) {
                        return Err(de::Error::custom(format!("duplicate key {key:?}")));
                    }
                    lists.push((key, items));
                }
                Ok(SpeakerLists(lists))
            }
        }
        deserializer.deserialize_map(ListsVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for Observation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObservationVisitor;
        impl<'de> Visitor<'de> for ObservationVisitor {
            type Value = Observation;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a pair [fact, evidence] with evidence a dialogue id or a list of them")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Observation, A::Error> {
                let fact: String = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let evidence: StringOrList = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(Observation { fact, evidence: evidence.0 })
            }
        }
        deserializer.deserialize_seq(ObservationVisitor)
    }
}

/// A string, or a list of strings.
struct StringOrList(Vec<String>);

impl<'de> Deserialize<'de> for StringOrList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;
        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = StringOrList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<StringOrList, E> {
                Ok(StringOrList(vec![value.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringOrList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(StringOrList(items))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

impl<'de> Deserialize<'de> for Category {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = u64::deserialize(deserializer)?;
        Category::from_id(id).ok_or_else(|| de::Error::custom(format!("expected a LoCoMo category 1-5, got {id}")))
    }
}

/// A QA item as written, before the category-dependent checks.
#[derive(Deserialize)]
pub(super) struct RawQaItem {
    question: String,
    #[serde(default)]
    answer: Option<AnswerText>,
    #[serde(default)]
    adversarial_answer: Option<String>,
    evidence: Vec<String>,
    category: Category,
}

impl TryFrom<RawQaItem> for QaItem {
    type Error = String;

    fn try_from(raw: RawQaItem) -> Result<Self, String> {
        if raw.answer.is_none() && raw.category != Category::Adversarial {
            return Err(format!("category {} ({}) question has no \"answer\"; expected one for categories 1-4", raw.category.id(), raw.category));
        }
        Ok(QaItem {
            question: raw.question,
            answer: raw.answer.map(|a| a.0),
            adversarial_answer: raw.adversarial_answer,
            evidence: Evidence::from_raw(raw.evidence),
            category: raw.category,
        })
    }
}
