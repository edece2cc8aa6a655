//! The sweep file (`SWEEP.toml`), typed and checked.
//!
//! ```toml
//! name = "facts-lr"                   # output directory: sweeps/<name>/ unless out_dir is set
//! base = "../../configs/quickstart.toml"  # the run config, relative to this file
//! seeds = [0, 1, 2]                   # run.seed of each repeat (default: the base config's)
//! metric = "eval/reward"              # summarised at the last step that logged it
//! goal = "max"                        # or "min": which end is best (progress, summary)
//!
//! [set]                               # fixed overrides for every trial
//! "run.steps" = 20
//!
//! [grid]                              # every combination, keys in sorted order (the first
//!                                     # outermost); quoted dotted keys or nested tables
//! "trainer.lr" = [1e-4, 3e-4]
//! "rollout.group_size" = [4, 8]
//!
//! [random]                            # `samples` draws, each combined with every grid point
//! seed = 0
//! samples = 4
//! [[random.param]]
//! key = "algorithm.clip_high"
//! distribution = "uniform"            # or "log_uniform" (low > 0)
//! low = 0.2
//! high = 0.3
//! integer = false                     # true: integers in [low, high]
//! ```
//!
//! Every table denies unknown keys; an error names the file and the dotted key. The keys a
//! parameter may name are those of the run config (checked when the trials are planned); the
//! sweep sets `run.seed`, `run.name` and `run.dir` itself, so those are refused here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SweepError;

/// The most trials one sweep may plan.
pub const MAX_TRIALS: usize = 10_000;

/// The metric summarised when the sweep file names none.
pub const DEFAULT_METRIC: &str = crate::metrics::names::EVAL_REWARD;

/// Keys the sweep sets for every trial, so a sweep file may not.
const RESERVED_KEYS: &[(&str, &str)] = &[
    ("run.seed", "list the seeds in `seeds` instead"),
    ("run.name", "the sweep names each trial <sweep name>-<trial id>"),
    ("run.dir", "each trial's run directory lies in the sweep's output directory"),
];

/// How a random parameter is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// Uniform on [low, high).
    Uniform,
    /// exp(uniform on [ln low, ln high)): equal mass per decade (learning rates).
    LogUniform,
}

/// Which end of the metric is best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// Higher is better (rewards).
    #[default]
    Max,
    /// Lower is better (losses).
    Min,
}

impl Goal {
    /// Whether `candidate` beats `best`.
    pub fn better(self, candidate: f64, best: f64) -> bool {
        match self {
            Goal::Max => candidate > best,
            Goal::Min => candidate < best,
        }
    }
}

/// One `[[random.param]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomParam {
    /// The dotted run-config key, e.g. `trainer.lr`.
    pub key: String,
    /// Uniform or log-uniform.
    pub distribution: Distribution,
    /// Lower bound.
    pub low: f64,
    /// Upper bound (exclusive for real values, inclusive for integers).
    pub high: f64,
    /// Draw integers in [low, high] (for counts such as `rollout.group_size`).
    #[serde(default)]
    pub integer: bool,
}

/// The `[random]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomSpec {
    /// Seed of the draws (independent of the trials' `run.seed`).
    pub seed: u64,
    /// Number of draws; each is combined with every grid point.
    pub samples: usize,
    /// The drawn parameters, in file order.
    pub params: Vec<RandomParam>,
}

/// A parsed, checked sweep file.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSpec {
    /// The sweep file, as given.
    pub file: PathBuf,
    /// The sweep's name (default output directory `sweeps/<name>`).
    pub name: String,
    /// The base run config, resolved against the sweep file's directory.
    pub base: PathBuf,
    /// The seeds each setting is repeated with (None: the base config's `run.seed`).
    pub seeds: Option<Vec<u64>>,
    /// The metric summarised per trial (its value at the last step that logged it).
    pub metric: String,
    /// Whether the metric is maximised or minimised.
    pub goal: Goal,
    /// Output directory from the file (None: `sweeps/<name>`).
    pub out_dir: Option<PathBuf>,
    /// Overrides applied to every trial, as (dotted key, value).
    pub fixed: Vec<(String, toml::Value)>,
    /// Grid parameters, as (dotted key, values), in key order.
    pub grid: Vec<(String, Vec<toml::Value>)>,
    /// Random parameters, if any.
    pub random: Option<RandomSpec>,
}

impl SweepSpec {
    /// The varied keys: the grid's, then the random ones.
    pub fn varied_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.grid.iter().map(|(k, _)| k.clone()).collect();
        if let Some(r) = &self.random {
            keys.extend(r.params.iter().map(|p| p.key.clone()));
        }
        keys
    }

    /// The output directory: `--out` if given, else the file's `out_dir`, else `sweeps/<name>`.
    pub fn output_dir(&self, cli_out: Option<&Path>) -> PathBuf {
        match (cli_out, &self.out_dir) {
            (Some(dir), _) => dir.to_path_buf(),
            (None, Some(dir)) => dir.clone(),
            (None, None) => Path::new("sweeps").join(&self.name),
        }
    }
}

/// The file as written, before flattening and checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    name: String,
    base: String,
    #[serde(default)]
    seeds: Option<Vec<u64>>,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    goal: Goal,
    #[serde(default)]
    out_dir: Option<String>,
    #[serde(default)]
    set: toml::Table,
    #[serde(default)]
    grid: toml::Table,
    #[serde(default)]
    random: Option<RawRandom>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRandom {
    #[serde(default)]
    seed: u64,
    samples: usize,
    #[serde(default)]
    param: Vec<RandomParam>,
}

/// Reads and checks a sweep file.
pub fn load_sweep(path: &Path) -> Result<SweepSpec, SweepError> {
    let text = std::fs::read_to_string(path).map_err(|source| SweepError::Read { path: path.to_path_buf(), source })?;
    parse_sweep(&text, path)
}

/// Parses and checks sweep-file text; `path` names it in errors and anchors `base`.
pub fn parse_sweep(text: &str, path: &Path) -> Result<SweepSpec, SweepError> {
    let file = path.display().to_string();
    let field = |key: &str, message: String| SweepError::Field { file: file.clone(), key: key.to_string(), message };
    let table: toml::Table = toml::from_str(text).map_err(|e| SweepError::Syntax { file: file.clone(), message: e.to_string() })?;
    let raw: RawSweep = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        field(if key == "." { "(top level)" } else { &key }, e.into_inner().message().to_string())
    })?;

    if raw.name.is_empty() || raw.name.contains(['/', '\\']) || raw.name == "." || raw.name == ".." {
        return Err(field("name", format!("{:?}: expected a non-empty name without path separators", raw.name)));
    }
    if raw.base.is_empty() {
        return Err(field("base", "expected the path of the base run config, relative to the sweep file".into()));
    }
    let base = path.parent().unwrap_or(Path::new("")).join(&raw.base);
    if let Some(seeds) = &raw.seeds {
        if seeds.is_empty() {
            return Err(field("seeds", "expected at least one seed (or leave `seeds` out for the base config's)".into()));
        }
        let distinct: BTreeSet<_> = seeds.iter().collect();
        if distinct.len() != seeds.len() {
            return Err(field("seeds", format!("{seeds:?} repeats a seed")));
        }
    }
    let metric = raw.metric.unwrap_or_else(|| DEFAULT_METRIC.to_string());
    if metric.is_empty() || metric == "step" || metric == "wall_time" {
        return Err(field("metric", format!("{metric:?}: expected a metric name logged in metrics.jsonl, e.g. eval/reward")));
    }
    if raw.out_dir.as_deref() == Some("") {
        return Err(field("out_dir", "expected a directory (leave it out for sweeps/<name>)".into()));
    }

    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut claim = |section: &str, key: &str| -> Result<(), SweepError> {
        let shown = format!("{section}.{key}");
        if key.split('.').any(str::is_empty) {
            return Err(field(&shown, "expected a dotted run-config key such as \"trainer.lr\"".into()));
        }
        if let Some((_, why)) = RESERVED_KEYS.iter().find(|(k, _)| *k == key) {
            return Err(field(&shown, format!("`{key}` is set by the sweep: {why}")));
        }
        if !seen.insert(key.to_string()) {
            return Err(field(&shown, format!("`{key}` is given more than once (in [set], [grid] or [random])")));
        }
        Ok(())
    };

    let mut fixed = Vec::new();
    flatten("", &raw.set, &mut fixed);
    for (key, value) in &fixed {
        claim("set", key)?;
        check_value(value).map_err(|m| field(&format!("set.{key}"), m))?;
    }

    let mut grid_leaves = Vec::new();
    flatten("", &raw.grid, &mut grid_leaves);
    let mut grid = Vec::new();
    for (key, value) in grid_leaves {
        claim("grid", &key)?;
        let shown = format!("grid.{key}");
        let toml::Value::Array(values) = value else {
            return Err(field(&shown, format!("expected an array of values to try, found {value}")));
        };
        if values.is_empty() {
            return Err(field(&shown, "expected at least one value".into()));
        }
        for (i, v) in values.iter().enumerate() {
            check_value(v).map_err(|m| field(&format!("{shown}[{i}]"), m))?;
        }
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                return Err(field(&format!("{shown}[{i}]"), format!("{v} is listed twice")));
            }
        }
        grid.push((key, values));
    }

    let random = match raw.random {
        None => None,
        Some(r) => {
            if r.samples == 0 {
                return Err(field("random.samples", "expected >= 1".into()));
            }
            if r.param.is_empty() {
                return Err(field("random.param", "expected at least one [[random.param]] entry".into()));
            }
            for (i, p) in r.param.iter().enumerate() {
                claim("random", &p.key).map_err(|e| match e {
                    SweepError::Field { message, .. } => field(&format!("random.param[{i}].key"), message),
                    other => other,
                })?;
                check_bounds(p).map_err(|m| field(&format!("random.param[{i}]"), m))?;
            }
            Some(RandomSpec { seed: r.seed, samples: r.samples, params: r.param })
        }
    };

    // Every trial is planned (its config loaded and checked) before any starts: bound the count.
    let trials = grid
        .iter()
        .map(|(_, values)| values.len())
        .chain(random.as_ref().map(|r| r.samples))
        .chain(raw.seeds.as_ref().map(Vec::len))
        .try_fold(1usize, usize::checked_mul);
    if trials.is_none_or(|n| n > MAX_TRIALS) {
        let count = trials.map_or("more than usize::MAX".to_string(), |n| n.to_string());
        return Err(field("grid", format!("[grid] values x random.samples x seeds make {count} trials; at most {MAX_TRIALS} are allowed")));
    }

    Ok(SweepSpec {
        file: path.to_path_buf(),
        name: raw.name,
        base,
        seeds: raw.seeds,
        metric,
        goal: raw.goal,
        out_dir: raw.out_dir.map(PathBuf::from),
        fixed,
        grid,
        random,
    })
}

/// Flattens nested tables into (dotted key, leaf value), so `trainer.lr = [..]` and
/// `"trainer.lr" = [..]` mean the same.
fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            other => out.push((key, other.clone())),
        }
    }
}

/// A value a parameter may take: a string, number, boolean or array of them (no tables, no
/// dates, finite floats).
fn check_value(v: &toml::Value) -> Result<(), String> {
    match v {
        toml::Value::Float(f) if !f.is_finite() => Err(format!("{f} is not a finite number")),
        toml::Value::String(_) | toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => Ok(()),
        toml::Value::Array(items) => items.iter().try_for_each(check_value),
        toml::Value::Datetime(d) => Err(format!("{d}: dates are not config values")),
        toml::Value::Table(_) => Err("expected a value, found a table".into()),
    }
}

/// Checks a random parameter's bounds.
fn check_bounds(p: &RandomParam) -> Result<(), String> {
    if !(p.low.is_finite() && p.high.is_finite() && p.low < p.high) {
        return Err(format!("low = {} and high = {}: expected finite bounds with low < high", p.low, p.high));
    }
    if p.distribution == Distribution::LogUniform && p.low <= 0.0 {
        return Err(format!("low = {}: a log_uniform draw needs low > 0", p.low));
    }
    if p.integer {
        if p.low.ceil() > p.high.floor() {
            return Err(format!("[{}, {}] holds no integer", p.low, p.high));
        }
        if p.low.abs() > 2f64.powi(53) || p.high.abs() > 2f64.powi(53) {
            return Err("integer bounds must lie within ±2^53".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SweepSpec, SweepError> {
        parse_sweep(text, Path::new("exp/sweep.toml"))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn full_file_parses_and_flattens_keys() {
        let spec = parse(
            r#"
            name = "lr"
            base = "../configs/q.toml"
            seeds = [0, 1]
            [set]
            "run.steps" = 3
            eval.episodes = 2
            [grid]
            "trainer.lr" = [1e-4, 3e-4]
            rollout.group_size = [4, 8]
            [random]
            seed = 5
            samples = 3
            [[random.param]]
            key = "algorithm.clip_high"
            distribution = "uniform"
            low = 0.2
            high = 0.3
            "#,
        )
        .unwrap();
        assert_eq!(spec.base, Path::new("exp/../configs/q.toml"));
        assert_eq!(spec.metric, "eval/reward");
        assert_eq!(spec.seeds, Some(vec![0, 1]));
        let fixed: Vec<&str> = spec.fixed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(fixed, ["eval.episodes", "run.steps"]);
        let grid: Vec<&str> = spec.grid.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(grid, ["rollout.group_size", "trainer.lr"]);
        assert_eq!(spec.varied_keys(), ["rollout.group_size", "trainer.lr", "algorithm.clip_high"]);
        assert_eq!(spec.random.as_ref().unwrap().samples, 3);
        assert_eq!(spec.output_dir(None), Path::new("sweeps/lr"));
        assert_eq!(spec.output_dir(Some(Path::new("x"))), Path::new("x"));
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let e = error("name = \"a\"\nbase = \"b.toml\"\nseedz = [1]\n");
        assert!(e.contains("exp/sweep.toml") && e.contains("seedz"), "{e}");
        let e = error(
            "name = \"a\"\nbase = \"b.toml\"\n[random]\nsamples = 2\n[[random.param]]\nkey = \"trainer.lr\"\ndistribution = \"normal\"\nlow = 1\nhigh = 2\n",
        );
        assert!(e.contains("random.param[0].distribution") && e.contains("normal"), "{e}");
        let e = error(
            "name = \"a\"\nbase = \"b.toml\"\n[random]\nsamples = 2\n[[random.param]]\nkey = \"trainer.lr\"\ndistribution = \"uniform\"\nlow = 1\nhigh = 2\nscale = 3\n",
        );
        assert!(e.contains("random.param[0]") && e.contains("scale"), "{e}");
        let e = error("name = \"a\"\nbase = \"b.toml\"\nseeds = \"0\"\n");
        assert!(e.contains("`seeds`"), "{e}");
        let e = error("name = \"a\"\nbase = \"b.toml\"\n[grid]\n\"trainer.lr\" = 1e-4\n");
        assert!(e.contains("grid.trainer.lr") && e.contains("array"), "{e}");
        let e = error("name = \"a\"\nbase = \"b.toml\"\n[grid]\n\"trainer.lr\" = []\n");
        assert!(e.contains("grid.trainer.lr") && e.contains("at least one"), "{e}");
        let e = error("name = \"a\"\nbase = \"b.toml\"\n[grid]\n\"trainer.lr\" = [1e-4, 1e-4]\n");
        assert!(e.contains("grid.trainer.lr[1]") && e.contains("twice"), "{e}");
        assert!(error("name = \"a\"\nbase = \"b.toml\"\n[grid]\n\"run.seed\" = [1, 2]\n").contains("`seeds`"));
        assert!(error("name = \"a\"\nbase = \"b.toml\"\n[set]\n\"run.dir\" = \"x\"\n").contains("run.dir"));
        let e = error("name = \"a\"\nbase = \"b.toml\"\n[set]\n\"trainer.lr\" = 1e-4\n[grid]\ntrainer.lr = [1e-4]\n");
        assert!(e.contains("grid.trainer.lr") && e.contains("more than once"), "{e}");
        assert!(error("name = \"a/b\"\nbase = \"b.toml\"\n").contains("`name`"));
        assert!(error("name = \"a\"\nbase = \"b.toml\"\nseeds = []\n").contains("`seeds`"));
        assert!(error("name = \"a\"\nbase = \"b.toml\"\nseeds = [1, 1]\n").contains("repeats"));
        assert!(error("name = \"a\"\n").contains("base"));
        assert!(error("name = \"a\"\nbase = \"b.toml\"\n[grid\n").contains("not valid TOML"));
    }

    #[test]
    fn random_bounds_are_checked() {
        let one = |dist: &str, low: f64, high: f64, integer: bool| {
            parse(&format!(
                "name = \"a\"\nbase = \"b.toml\"\n[random]\nsamples = 2\n[[random.param]]\nkey = \"trainer.lr\"\n\
                 distribution = \"{dist}\"\nlow = {low:?}\nhigh = {high:?}\ninteger = {integer}\n"
            ))
        };
        assert!(one("uniform", 0.0, 1.0, false).is_ok());
        assert!(one("uniform", 1.0, 1.0, false).unwrap_err().to_string().contains("low < high"));
        assert!(one("log_uniform", 0.0, 1.0, false).unwrap_err().to_string().contains("low > 0"));
        assert!(one("uniform", 1.2, 1.8, true).unwrap_err().to_string().contains("no integer"));
        assert!(one("uniform", 2.0, 8.0, true).is_ok());
        let e = parse("name = \"a\"\nbase = \"b.toml\"\n[random]\nsamples = 0\n").unwrap_err().to_string();
        assert!(e.contains("random.samples"), "{e}");
        let e = parse("name = \"a\"\nbase = \"b.toml\"\n[random]\nsamples = 2\n").unwrap_err().to_string();
        assert!(e.contains("random.param"), "{e}");
    }
}
