//! `memrl data`: inspect the benchmark files (`memrl data stats`).

use std::path::{Path, PathBuf};

use anyhow::bail;
use memrl_datasets::locomo::{Category, LocomoDataset};
use memrl_datasets::longmemeval::LongMemEvalDataset;
use memrl_envs::data_path;
use serde_json::json;

/// The benchmarks `memrl data` and `memrl score` know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bench {
    /// LoCoMo (`locomo10.json`).
    Locomo,
    /// LongMemEval (`longmemeval_s` / `_m` / `_oracle` JSON).
    Longmemeval,
}

/// Arguments of `memrl data`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DataCommand {
    /// Count conversations, sessions, turns and questions (by category / type, with ids).
    Stats(StatsArgs),
}

/// Arguments of `memrl data stats`.
#[derive(Debug, clap::Args)]
struct StatsArgs {
    /// Which benchmark the file holds.
    #[arg(long, value_enum)]
    bench: Bench,
    /// The data file. LoCoMo defaults to `$MEMRL_DATA_DIR/locomo/locomo10.json`, then
    /// `../shared/data/locomo/locomo10.json` from the current directory; LongMemEval has
    /// no default.
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

/// Runs `memrl data <command>`.
pub fn run(args: DataArgs) -> anyhow::Result<()> {
    match args.command {
        DataCommand::Stats(stats) => run_stats(stats),
    }
}

/// The LoCoMo file to use: `explicit` (`--data`) if given, else `locomo/locomo10.json` in the
/// data directory (`$MEMRL_DATA_DIR`, else `../shared/data` relative to the current directory:
/// [`memrl_envs::data_path`]).
pub fn resolve_locomo_path(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let default = Path::new("locomo/locomo10.json");
    data_path::resolve(default).map_err(|_| {
        let tried: Vec<String> = data_path::candidates(default).iter().map(|p| p.display().to_string()).collect();
        anyhow::anyhow!("no LoCoMo file found (tried {}); pass --data PATH or set {}", tried.join(", "), data_path::DATA_DIR_VAR)
    })
}

/// The LongMemEval file to use: it must be given explicitly.
pub fn require_longmemeval_path(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(path) => Ok(path.to_path_buf()),
        None => bail!("--bench longmemeval needs --data PATH (a longmemeval_s / _m / _oracle JSON file; there is no default)"),
    }
}

/// Loads LoCoMo with a one-line error.
pub fn load_locomo(path: &Path) -> anyhow::Result<LocomoDataset> {
    Ok(LocomoDataset::load(path)?)
}

/// Loads LongMemEval with a one-line error.
pub fn load_longmemeval(path: &Path) -> anyhow::Result<LongMemEvalDataset> {
    Ok(LongMemEvalDataset::load(path)?)
}

/// `1234567` -> `"1,234,567"`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn run_stats(args: StatsArgs) -> anyhow::Result<()> {
    match args.bench {
        Bench::Locomo => {
            let path = resolve_locomo_path(args.data.as_deref())?;
            let data = load_locomo(&path)?;
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&locomo_stats_json(&data, &path))?);
            } else {
                print_locomo_stats(&data, &path);
            }
        }
        Bench::Longmemeval => {
            let path = require_longmemeval_path(args.data.as_deref())?;
            let data = load_longmemeval(&path)?;
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&longmemeval_stats_json(&data, &path))?);
            } else {
                print_longmemeval_stats(&data, &path);
            }
        }
    }
    Ok(())
}

fn category_counts(qa: &[memrl_datasets::locomo::QaItem]) -> [usize; 5] {
    let mut counts = [0; 5];
    for item in qa {
        counts[usize::from(item.category.id() - 1)] += 1;
    }
    counts
}

fn print_locomo_stats(data: &LocomoDataset, path: &Path) {
    let counts = data.counts();
    outln!("LoCoMo: {}", path.display());
    outln!("conversations  {:>7}", thousands(counts.conversations));
    outln!("sessions       {:>7}", thousands(counts.sessions));
    outln!("turns          {:>7}  ({} share an image)", thousands(counts.turns), thousands(counts.image_turns));
    outln!("questions      {:>7}", thousands(counts.questions));
    outln!();
    outln!("questions by category (official report order)");
    outln!("  id  category      questions");
    for (category, n) in &counts.by_category {
        outln!("  {:>2}  {:<12}  {:>9}", category.id(), category.name(), thousands(*n));
    }
    outln!();
    outln!("per conversation");
    outln!("  sample_id  speakers               sessions  turns  images    QA  cat1  cat2  cat3  cat4  cat5");
    for sample in &data.samples {
        let conversation = &sample.conversation;
        let turns: usize = conversation.sessions.iter().map(|s| s.turns.len()).sum();
        let images: usize = conversation.sessions.iter().flat_map(|s| &s.turns).filter(|t| !t.img_url.is_empty()).count();
        let by = category_counts(&sample.qa);
        let speakers = format!("{} / {}", conversation.speaker_a, conversation.speaker_b);
        outln!(
            "  {:<9}  {:<21}  {:>8}  {:>5}  {:>6}  {:>4}  {:>4}  {:>4}  {:>4}  {:>4}  {:>4}",
            sample.sample_id,
            speakers,
            conversation.sessions.len(),
            turns,
            images,
            sample.qa.len(),
            by[0],
            by[1],
            by[2],
            by[3],
            by[4]
        );
    }
    let orphans: usize = data.samples.iter().map(|s| s.conversation.orphan_session_dates.len()).sum();
    if orphans > 0 {
        outln!();
        outln!("note: {orphans} session_N_date_time keys have no session_N (ignored)");
    }
}

fn locomo_stats_json(data: &LocomoDataset, path: &Path) -> serde_json::Value {
    let counts = data.counts();
    let by_category: Vec<_> = counts.by_category.iter().map(|(category, n)| json!({"id": category.id(), "name": category.name(), "questions": n})).collect();
    let conversations: Vec<_> = data
        .samples
        .iter()
        .map(|sample| {
            let by = category_counts(&sample.qa);
            let by_category: serde_json::Map<String, serde_json::Value> =
                Category::REPORT_ORDER.iter().map(|c| (c.id().to_string(), json!(by[usize::from(c.id() - 1)]))).collect();
            json!({
                "sample_id": sample.sample_id,
                "speakers": [sample.conversation.speaker_a, sample.conversation.speaker_b],
                "sessions": sample.conversation.sessions.len(),
                "turns": sample.conversation.sessions.iter().map(|s| s.turns.len()).sum::<usize>(),
                "questions": sample.qa.len(),
                "questions_by_category": by_category,
                "orphan_session_dates": sample.conversation.orphan_session_dates.len(),
            })
        })
        .collect();
    json!({
        "bench": "locomo",
        "path": path.display().to_string(),
        "conversations": counts.conversations,
        "sessions": counts.sessions,
        "turns": counts.turns,
        "image_turns": counts.image_turns,
        "questions": counts.questions,
        "by_category": by_category,
        "per_conversation": conversations,
    })
}

fn print_longmemeval_stats(data: &LongMemEvalDataset, path: &Path) {
    let counts = data.counts();
    outln!("LongMemEval: {}", path.display());
    outln!("questions              {:>9}  ({} abstention)", thousands(counts.questions), counts.abstention);
    outln!("haystack sessions      {:>9}", thousands(counts.sessions));
    outln!("distinct session ids   {:>9}", thousands(counts.distinct_sessions));
    outln!("turns                  {:>9}", thousands(counts.turns));
    outln!();
    outln!("questions by type");
    outln!("  type                         questions  abstention");
    for (question_type, total, abstention) in &counts.by_type {
        outln!("  {:<27}  {:>9}  {:>10}", question_type.name(), thousands(*total), abstention);
    }
}

fn longmemeval_stats_json(data: &LongMemEvalDataset, path: &Path) -> serde_json::Value {
    let counts = data.counts();
    let by_type: Vec<_> = counts.by_type.iter().map(|(t, total, abstention)| json!({"type": t.name(), "questions": total, "abstention": abstention})).collect();
    json!({
        "bench": "longmemeval",
        "path": path.display().to_string(),
        "questions": counts.questions,
        "abstention": counts.abstention,
        "haystack_sessions": counts.sessions,
        "distinct_sessions": counts.distinct_sessions,
        "turns": counts.turns,
        "by_type": by_type,
    })
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(5_882), "5,882");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
