//! LoCoMo timestamps: session times like `"1:56 pm on 8 May, 2023"` and event dates like
//! `"8 May, 2023"`. Both keep the raw text (prompts show it verbatim) and the parsed value.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Deserializer, de};

/// A session timestamp as written in the file, with its parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocomoDateTime {
    /// The text exactly as in the file, e.g. `"1:56 pm on 8 May, 2023"`.
    pub raw: String,
    /// The parsed local date and time (no time zone is given in the data).
    pub value: NaiveDateTime,
}

/// An event-summary date as written in the file (`"8 May, 2023"`), with its parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocomoDate {
    /// The text exactly as in the file.
    pub raw: String,
    /// The parsed calendar date.
    pub value: NaiveDate,
}

const MONTHS: [&str; 12] = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"];

/// Month number (1-12) from an English month name or its three-letter abbreviation.
fn month_number(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    MONTHS.iter().position(|full| *full == lower || (lower.len() == 3 && full.starts_with(&lower))).map(|index| index as u32 + 1)
}

/// Parses `"D Month, YYYY"` (the comma is optional).
pub fn parse_locomo_date(text: &str) -> Option<NaiveDate> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [day, month, year] = parts.as_slice() else {
        return None;
    };
    let day: u32 = day.parse().ok()?;
    let month = month_number(month.trim_end_matches(','))?;
    let year: i32 = year.parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// Parses `"h:mm am|pm on D Month, YYYY"` (am/pm in any case).
pub fn parse_locomo_date_time(text: &str) -> Option<NaiveDateTime> {
    let (time_part, date_part) = text.split_once(" on ")?;
    let date = parse_locomo_date(date_part)?;
    let time_tokens: Vec<&str> = time_part.split_whitespace().collect();
    let [clock, meridiem] = time_tokens.as_slice() else {
        return None;
    };
    let (hour, minute) = clock.split_once(':')?;
    let hour: u32 = hour.parse().ok()?;
    let minute: u32 = minute.parse().ok()?;
    if !(1..=12).contains(&hour) {
        return None;
    }
    let hour24 = match meridiem.to_ascii_lowercase().as_str() {
        "am" => hour % 12,
        "pm" => hour % 12 + 12,
        _ => return None,
    };
    let time = NaiveTime::from_hms_opt(hour24, minute, 0)?;
    Some(NaiveDateTime::new(date, time))
}

impl<'de> Deserialize<'de> for LocomoDateTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        match parse_locomo_date_time(&raw) {
            Some(value) => Ok(Self { raw, value }),
            None => Err(de::Error::custom(format!("expected a session time like \"1:56 pm on 8 May, 2023\", got {raw:?}"))),
        }
    }
}

impl<'de> Deserialize<'de> for LocomoDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        match parse_locomo_date(&raw) {
            Some(value) => Ok(Self { raw, value }),
            None => Err(de::Error::custom(format!("expected a date like \"8 May, 2023\", got {raw:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_session_times() {
        let t = parse_locomo_date_time("1:56 pm on 8 May, 2023").unwrap();
        assert_eq!(t.to_string(), "2023-05-08 13:56:00");
        let t = parse_locomo_date_time("12:09 am on 13 September, 2023").unwrap();
        assert_eq!(t.to_string(), "2023-09-13 00:09:00");
        let t = parse_locomo_date_time("12:30 PM on 1 Jan, 2024").unwrap();
        assert_eq!(t.to_string(), "2024-01-01 12:30:00");
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "",
            "1:56 pm 8 May, 2023",
            "13:56 pm on 8 May, 2023",
            "1:56 xm on 8 May, 2023",
            "1:56 pm on 31 February, 2023",
            "1:61 pm on 8 May, 2023",
            "1:56 pm on 8 Mayo, 2023",
        ] {
            assert!(parse_locomo_date_time(bad).is_none(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn parses_event_dates() {
        assert_eq!(parse_locomo_date("8 May, 2023").unwrap().to_string(), "2023-05-08");
        assert!(parse_locomo_date("May 8, 2023").is_none());
    }
}
