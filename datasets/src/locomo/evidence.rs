//! Dialogue ids (`"D<session>:<turn>"`) and the loosely formatted QA evidence lists.

use std::fmt;

/// The id of one dialogue turn: session number and 1-based turn index within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiaId {
    /// The session number `N` of `session_N`.
    pub session: u32,
    /// The 1-based index of the turn within its session.
    pub turn: u32,
}

impl DiaId {
    /// Parses exactly `D<session>:<turn>` (decimal numbers); anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix('D')?;
        let (session, turn) = rest.split_once(':')?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(session) || !all_digits(turn) {
            return None;
        }
        Some(Self { session: session.parse().ok()?, turn: turn.parse().ok()? })
    }
}

impl fmt::Display for DiaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "D{}:{}", self.session, self.turn)
    }
}

/// The evidence of a QA item: the raw strings as in the file, and a best-effort parse.
///
/// A raw string may hold several ids (`"D8:6; D9:17"`, `"D9:1 D4:4 D4:6"`); they are split
/// on `;`, `,` and whitespace. Fragments that are not `D<n>:<m>` (`"D"`, `"D:11:26"`)
/// are kept in [`Evidence::unparsed`] instead of failing the load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The evidence strings exactly as in the file (possibly empty).
    pub raw: Vec<String>,
    /// Every dialogue id that could be parsed, in order of appearance.
    pub parsed: Vec<DiaId>,
    /// Fragments that could not be parsed as a dialogue id.
    pub unparsed: Vec<String>,
}

impl Evidence {
    /// Splits and parses the raw evidence strings.
    pub fn from_raw(raw: Vec<String>) -> Self {
        let mut parsed = Vec::new();
        let mut unparsed = Vec::new();
        for entry in &raw {
            for fragment in entry.split(|c: char| c == ';' || c == ',' || c.is_whitespace()).filter(|fragment| !fragment.is_empty()) {
                match DiaId::parse(fragment) {
                    Some(id) => parsed.push(id),
                    None => unparsed.push(fragment.to_string()),
                }
            }
            if entry.trim().is_empty() {
                unparsed.push(entry.clone());
            }
        }
        Self { raw, parsed, unparsed }
    }

    /// The distinct session numbers the parsed evidence points to, ascending.
    pub fn sessions(&self) -> Vec<u32> {
        let mut sessions: Vec<u32> = self.parsed.iter().map(|id| id.session).collect();
        sessions.sort_unstable();
        sessions.dedup();
        sessions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(raw: &[&str]) -> Evidence {
        Evidence::from_raw(raw.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn parses_well_formed_ids() {
        assert_eq!(DiaId::parse("D12:3"), Some(DiaId { session: 12, turn: 3 }));
        assert_eq!(DiaId::parse("D12:3").unwrap().to_string(), "D12:3");
        for bad in ["D", "D:11:26", "D1:", "d1:2", "D1:2x", "D-1:2", "", "D1:2:3"] {
            assert_eq!(DiaId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn splits_combined_and_keeps_malformed() {
        let e = ev(&["D8:6; D9:17", "D9:1 D4:4 D4:6", "D", "D:11:26"]);
        assert_eq!(e.raw.len(), 4);
        let ids: Vec<String> = e.parsed.iter().map(|id| id.to_string()).collect();
        assert_eq!(ids, ["D8:6", "D9:17", "D9:1", "D4:4", "D4:6"]);
        assert_eq!(e.unparsed, ["D", "D:11:26"]);
        assert_eq!(e.sessions(), [4, 8, 9]);
    }

    #[test]
    fn empty_evidence_is_fine() {
        let e = ev(&[]);
        assert!(e.raw.is_empty() && e.parsed.is_empty() && e.unparsed.is_empty());
        assert_eq!(ev(&[""]).unparsed, [""]);
    }
}
