//! The `memrl` command line: one module per subcommand, dispatched from `main.rs`.

pub mod bench;
pub mod data;
pub mod env;
pub mod eval;
pub mod generate;
pub mod plot;
pub mod score;
pub mod sweep;
pub mod tokenize;
pub mod train;

/// The most episodes (or questions) one `memrl env play` or `memrl eval` plays: each is held in
/// memory, so a count beyond this is refused up front rather than aborting on allocation.
pub const MAX_EPISODES: u64 = 1_000_000;

/// Longest text of one error in the chain [`error_line`] prints, in characters.
const MAX_CAUSE_CHARS: usize = 2000;

/// The one line `memrl` prints for an error: its chain joined by `: `, where a cause whose text
/// the line already ends with (a third-party error that embeds its source and also returns it
/// as the source; memrl's own errors never do) is printed once; control characters escaped and each cause capped at
/// [`MAX_CAUSE_CHARS`], so a message quoting binary bytes stays one readable line.
pub fn error_line(error: &anyhow::Error) -> String {
    chain_line(error.chain())
}

/// [`error_line`] for a typed error (`e` then its sources): for a warning or a report that
/// carries an error on, so that the OS error its source holds is not lost.
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    chain_line(std::iter::successors(Some(error), |e| e.source()))
}

fn chain_line<'a>(chain: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>) -> String {
    let mut line = String::new();
    for cause in chain {
        let text = printable(&cause.to_string());
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// `text` with control characters escaped (`\n`, `\u{1b}`) and cut at [`MAX_CAUSE_CHARS`].
fn printable(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_CAUSE_CHARS {
            out.push_str(&format!("... ({} more bytes)", text.len() - text.char_indices().nth(i).map_or(text.len(), |(b, _)| b)));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A third-party error of the kind memrl's own no longer are (see tests/error_messages.rs):
    /// its message embeds its source, which it also returns.
    #[derive(Debug)]
    struct EmbedsItsSource {
        source: std::io::Error,
    }

    impl std::fmt::Display for EmbedsItsSource {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "reading x.json: {}", self.source)
        }
    }

    impl std::error::Error for EmbedsItsSource {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn an_embedded_source_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
        let error = anyhow::Error::new(EmbedsItsSource { source: io }).context("loading the config");
        assert_eq!(error_line(&error), "loading the config: reading x.json: No such file or directory (os error 2)");
    }

    #[test]
    fn binary_bytes_are_escaped_and_capped() {
        let junk: String = std::iter::repeat_n("\u{1b}[2J\0name", 10_000).collect();
        let line = error_line(&anyhow::anyhow!("bad tensor name {junk}"));
        assert!(line.len() < 3 * MAX_CAUSE_CHARS, "{}", line.len());
        assert!(!line.chars().any(char::is_control), "{line}");
        assert!(line.contains("\\u{1b}") && line.contains("more bytes"), "{line}");
    }
}
