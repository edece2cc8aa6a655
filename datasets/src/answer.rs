//! Gold answers that the benchmarks write as a JSON string or, now and then, an integer.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A gold answer: a string, or an integer kept as its decimal text.
pub(crate) struct AnswerText(pub(crate) String);

impl<'de> Deserialize<'de> for AnswerText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnswerVisitor;
        impl Visitor<'_> for AnswerVisitor {
            type Value = AnswerText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<AnswerText, E> {
                Ok(AnswerText(value.to_string()))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<AnswerText, E> {
                Ok(AnswerText(value.to_string()))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<AnswerText, E> {
                Ok(AnswerText(value.to_string()))
            }
        }
        deserializer.deserialize_any(AnswerVisitor)
    }
}
