//! From a sweep file to the resolved trial list (`trials.json`): grid combinations, random
//! draws, seeds, and each trial's `--set` overrides, checked against the run config.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::SweepError;
use super::spec::{Distribution, RandomParam, RandomSpec, SweepSpec};
use crate::config::{self, Config};

/// Version of the `trials.json` layout.
pub const TRIAL_LIST_VERSION: u32 = 1;

/// One varied key and its value in a setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamValue {
    /// The dotted run-config key.
    pub key: String,
    /// Its value in this setting.
    pub value: toml::Value,
}

/// One combination of the varied parameters (repeated over the seeds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    /// Short id, `s00`, `s01`, ...
    pub id: String,
    /// Human-readable values, e.g. `lr=1e-4 group_size=4`.
    pub label: String,
    /// The varied keys' values, in [`SweepSpec::varied_keys`] order.
    pub values: Vec<ParamValue>,
}

/// One training run of the sweep: a setting with a seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// `<setting id>-seed<seed>`; also the name of its run directory.
    pub id: String,
    /// Index into [`TrialList::settings`].
    pub setting: usize,
    /// Its `run.seed`.
    pub seed: u64,
    /// The `--set KEY=VALUE` arguments (fixed, varied, seed); `run.name` and `run.dir` are
    /// added when it is launched.
    pub overrides: Vec<String>,
    /// Its run directory, relative to the sweep's output directory.
    pub run_dir: String,
    /// Its `run.steps` (a run that logged this step and checkpointed it has finished).
    pub steps: u64,
}

/// The resolved sweep, as saved in `trials.json` before any trial starts. A re-run compares
/// its own resolution with the saved one and refuses to mix two different sweeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialList {
    /// [`TRIAL_LIST_VERSION`].
    pub version: u32,
    /// The sweep's name.
    pub name: String,
    /// The sweep file, as given on the command line (informational).
    pub sweep_file: String,
    /// The base config path used (informational).
    pub base: String,
    /// The base config resolved (defaults + file), as TOML: a change to it changes the sweep.
    pub base_config: String,
    /// The summarised metric (may change between runs: it only affects the summary).
    pub metric: String,
    /// The varied keys.
    pub params: Vec<String>,
    /// The settings.
    pub settings: Vec<Setting>,
    /// The trials, setting-major.
    pub trials: Vec<Trial>,
}

impl TrialList {
    /// The first difference that makes `other` a different sweep from `self` (None when the
    /// same trials would run). The metric, file paths and name do not count.
    pub fn difference(&self, other: &TrialList) -> Option<String> {
        let stored = as_read_now(&self.base_config);
        if stored != other.base_config {
            let keys = changed_keys(&stored, &other.base_config);
            let keys = if keys.is_empty() { String::new() } else { format!(" in {}", keys.join(", ")) };
            return Some(format!("the resolved base config {} changed{keys}", other.base));
        }
        if self.params != other.params {
            return Some(format!("the varied keys were [{}], now [{}]", self.params.join(", "), other.params.join(", ")));
        }
        if self.settings != other.settings {
            let changed =
                self.settings.iter().zip(&other.settings).find(|(a, b)| a != b).map(|(a, b)| format!("setting {} was `{}`, now `{}`", a.id, a.label, b.label));
            return Some(changed.unwrap_or_else(|| format!("it had {} settings, now {}", self.settings.len(), other.settings.len())));
        }
        if self.trials != other.trials {
            let changed = self.trials.iter().zip(&other.trials).find(|(a, b)| a != b).map(|(a, b)| {
                if a.id != b.id {
                    format!("trial {} is now {}", a.id, b.id)
                } else {
                    format!("trial {} was [{}], now [{}]", a.id, a.overrides.join(" "), b.overrides.join(" "))
                }
            });
            return Some(changed.unwrap_or_else(|| format!("it had {} trials, now {} (the seeds changed)", self.trials.len(), other.trials.len())));
        }
        None
    }
}

/// The dotted keys whose values differ between two TOML documents (empty when either does not
/// parse).
/// A stored resolved config as this version of memrl reads it: keys added to the config since it
/// was written take their defaults (which keep the earlier behaviour), so upgrading memrl alone
/// does not make a half-finished sweep "different". Text this version cannot read stays as is.
fn as_read_now(resolved: &str) -> String {
    config::from_toml_str(resolved, "trials.json", &[]).map_or_else(|_| resolved.to_string(), |c| c.to_toml_string())
}

fn changed_keys(a: &str, b: &str) -> Vec<String> {
    fn walk(prefix: &str, a: Option<&toml::Value>, b: Option<&toml::Value>, out: &mut Vec<String>) {
        match (a, b) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&path, x.get(k), y.get(k), out);
                }
            }
            _ if a != b => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let (Ok(x), Ok(y)) = (a.parse::<toml::Table>(), b.parse::<toml::Table>()) else { return Vec::new() };
    let mut out = Vec::new();
    walk("", Some(&toml::Value::Table(x)), Some(&toml::Value::Table(y)), &mut out);
    out
}

/// A planned sweep: the trial list and each trial's resolved config.
#[derive(Debug, Clone)]
pub struct SweepPlan {
    /// What `trials.json` holds.
    pub list: TrialList,
    /// The resolved config of each trial (same order as `list.trials`).
    pub configs: Vec<Config>,
}

/// Resolves the settings and trials of `spec` whose run directories lie under `out_dir`, and
/// checks every trial's config (base + overrides) loads: errors name the trial and the key.
pub fn plan_sweep(spec: &SweepSpec, out_dir: &Path) -> Result<SweepPlan, SweepError> {
    let file = spec.file.display().to_string();
    let config_err = |what: String| {
        let file = file.clone();
        move |source| SweepError::Config { file, what, source: Box::new(source) }
    };
    let base = config::load(Some(&spec.base), &[]).map_err(config_err(format!("base config {}", spec.base.display())))?;
    let defaults = toml::Value::try_from(Config::default()).expect("the default config serialises");
    let seeds = spec.seeds.clone().unwrap_or_else(|| vec![base.run.seed]);

    let combos = combinations(spec);
    let width = format!("{}", combos.len().saturating_sub(1)).len().max(2);
    let keys = spec.varied_keys();
    let short = short_names(&keys);
    let settings: Vec<Setting> = combos
        .into_iter()
        .enumerate()
        .map(|(i, values)| Setting {
            id: format!("s{i:0width$}"),
            label: values.iter().zip(&short).map(|(p, name)| format!("{name}={}", format_value(&p.value))).collect::<Vec<_>>().join(" "),
            values,
        })
        .collect();

    let fixed: Vec<String> = spec.fixed.iter().map(|(k, v)| override_arg(k, v, &defaults)).collect();
    let mut trials = Vec::new();
    let mut configs = Vec::new();
    for (index, setting) in settings.iter().enumerate() {
        for &seed in &seeds {
            let id = format!("{}-seed{seed}", setting.id);
            let mut overrides = fixed.clone();
            overrides.extend(setting.values.iter().map(|p| override_arg(&p.key, &p.value, &defaults)));
            overrides.push(format!("run.seed={seed}"));
            let run_dir = format!("runs/{id}");
            let mut with_dir = overrides.clone();
            with_dir.extend(launch_overrides(&spec.name, &id, &out_dir.join(&run_dir)));
            let cfg = config::load(Some(&spec.base), &with_dir).map_err(config_err(format!("trial {id}")))?;
            trials.push(Trial { id, setting: index, seed, overrides, run_dir, steps: cfg.run.steps });
            configs.push(cfg);
        }
    }
    check_metric_is_logged(spec, &configs)?;
    let list = TrialList {
        version: TRIAL_LIST_VERSION,
        name: spec.name.clone(),
        sweep_file: file,
        base: spec.base.display().to_string(),
        base_config: base.to_toml_string(),
        metric: spec.metric.clone(),
        params: keys,
        settings,
        trials,
    };
    Ok(SweepPlan { list, configs })
}

/// Refuses a metric no trial can log in `metrics.jsonl`: an evaluation metric when every trial
/// has `eval.episodes = 0`, or an SFT metric (those go to `sft_metrics.jsonl`).
fn check_metric_is_logged(spec: &SweepSpec, configs: &[Config]) -> Result<(), SweepError> {
    let metric = &spec.metric;
    let why = if metric.starts_with("sft/") {
        Some("SFT metrics are logged in sft_metrics.jsonl, not metrics.jsonl, which the sweep summarises".to_string())
    } else if metric.starts_with("eval/") && configs.iter().all(|c| c.eval.episodes == 0) {
        Some("it is logged only by evaluations, and every trial has eval.episodes = 0; set \"eval.episodes\" in [set]".to_string())
    } else {
        None
    };
    match why {
        Some(why) => Err(SweepError::Field {
            file: spec.file.display().to_string(),
            key: "metric".into(),
            message: format!("{metric:?} would never be logged: {why}, or name a training metric such as reward/mean"),
        }),
        None => Ok(()),
    }
}

/// The `--set` arguments that place a trial: its run name and run directory.
pub fn launch_overrides(sweep_name: &str, trial_id: &str, run_dir: &Path) -> [String; 2] {
    [format!("run.name={sweep_name}-{trial_id}"), format!("run.dir={}", run_dir.display())]
}

/// The settings: every grid combination (first key outermost), each combined with every random
/// draw. A draw that repeats an earlier setting exactly (possible with integer draws) is
/// dropped, since it would rerun identical trials.
pub fn combinations(spec: &SweepSpec) -> Vec<Vec<ParamValue>> {
    let mut points: Vec<Vec<ParamValue>> = vec![Vec::new()];
    for (key, values) in &spec.grid {
        points = points
            .iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push(ParamValue { key: key.clone(), value: v.clone() });
                    q
                })
            })
            .collect();
    }
    let Some(random) = &spec.random else {
        return points;
    };
    let draws = draw_random(random);
    let mut out: Vec<Vec<ParamValue>> = Vec::new();
    for p in &points {
        for d in &draws {
            let mut q = p.clone();
            q.extend(d.iter().cloned());
            if !out.contains(&q) {
                out.push(q);
            }
        }
    }
    out
}

/// The `samples` random draws of `[random]`, from its own seed (ChaCha8): the same seed gives
/// the same draws on every machine.
pub fn draw_random(random: &RandomSpec) -> Vec<Vec<ParamValue>> {
    let mut rng = ChaCha8Rng::seed_from_u64(random.seed);
    (0..random.samples).map(|_| random.params.iter().map(|p| ParamValue { key: p.key.clone(), value: draw(p, &mut rng) }).collect()).collect()
}

/// One draw of `p`.
fn draw(p: &RandomParam, rng: &mut ChaCha8Rng) -> toml::Value {
    let (lo_int, hi_int) = (p.low.ceil(), p.high.floor());
    match (p.distribution, p.integer) {
        (Distribution::Uniform, false) => toml::Value::Float(rng.random_range(p.low..p.high)),
        (Distribution::LogUniform, false) => {
            let x = rng.random_range(p.low.ln()..p.high.ln()).exp();
            toml::Value::Float(x.clamp(p.low, p.high))
        }
        (Distribution::Uniform, true) => toml::Value::Integer(rng.random_range(lo_int as i64..=hi_int as i64)),
        (Distribution::LogUniform, true) => {
            // Each integer n gets the log-mass of [n - 0.5, n + 0.5); low > 0 so lo_int >= 1.
            let x = rng.random_range((lo_int - 0.5).ln()..(hi_int + 0.5).ln()).exp();
            toml::Value::Integer(x.round().clamp(lo_int, hi_int) as i64)
        }
    }
}

/// The `KEY=VALUE` text of an override, as `config::apply_override` will read it back: strings
/// go raw for keys whose default is a string (it keeps the raw text), quoted elsewhere (e.g.
/// under `env.options`, where the text is parsed as a TOML literal); floats keep a decimal point
/// or exponent so they stay floats.
pub fn override_arg(key: &str, value: &toml::Value, defaults: &toml::Value) -> String {
    let text = match value {
        toml::Value::String(s) if default_is_string(defaults, key) => s.clone(),
        toml::Value::Float(f) => format!("{f:?}"),
        other => other.to_string(),
    };
    format!("{key}={text}")
}

fn default_is_string(defaults: &toml::Value, key: &str) -> bool {
    let mut node = defaults;
    for part in key.split('.') {
        match node.get(part) {
            Some(child) => node = child,
            None => return false,
        }
    }
    node.is_str()
}

/// A value as shown in labels and tables: strings bare, floats short (4 significant digits
/// when the exact form is long).
pub fn format_value(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Float(f) => {
            let exact = if *f != 0.0 && (f.abs() < 1e-3 || f.abs() >= 1e5) { format!("{f:e}") } else { format!("{f}") };
            if exact.len() <= 8 { exact } else { format!("{f:.3e}") }
        }
        other => other.to_string(),
    }
}

/// The last segment of each key (`trainer.lr` → `lr`), or the full keys where two would clash.
pub fn short_names(keys: &[String]) -> Vec<String> {
    let last = |k: &String| k.rsplit('.').next().unwrap_or(k).to_string();
    let lasts: Vec<String> = keys.iter().map(last).collect();
    let unique = lasts.iter().enumerate().all(|(i, a)| !lasts[..i].contains(a));
    if unique { lasts } else { keys.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::spec::parse_sweep;

    fn spec(text: &str) -> SweepSpec {
        parse_sweep(text, Path::new("sweep.toml")).unwrap()
    }

    const RANDOM: &str = r#"
        name = "r"
        base = "b.toml"
        [grid]
        "rollout.group_size" = [4, 8]
        [random]
        seed = 11
        samples = 5
        [[random.param]]
        key = "trainer.lr"
        distribution = "log_uniform"
        low = 1e-5
        high = 1e-3
        [[random.param]]
        key = "rollout.batch_size"
        distribution = "log_uniform"
        integer = true
        low = 1
        high = 64
        [[random.param]]
        key = "algorithm.clip_high"
        distribution = "uniform"
        low = 0.2
        high = 0.3
    "#;

    #[test]
    fn random_draws_are_reproducible_and_in_bounds() {
        let s = spec(RANDOM);
        let random = s.random.as_ref().unwrap();
        let a = draw_random(random);
        assert_eq!(a, draw_random(random), "the same seed gives the same draws");
        let mut other = random.clone();
        other.seed = 12;
        assert_ne!(a, draw_random(&other), "another seed gives other draws");
        assert_eq!(a.len(), 5);
        for d in &a {
            let lr = d[0].value.as_float().unwrap();
            assert!((1e-5..=1e-3).contains(&lr), "{lr}");
            let bs = d[1].value.as_integer().unwrap();
            assert!((1..=64).contains(&bs), "{bs}");
            let clip = d[2].value.as_float().unwrap();
            assert!((0.2..0.3).contains(&clip), "{clip}");
        }
        // Log-uniform spreads over decades: over many draws both halves (in log space) are hit.
        let mut many = random.clone();
        many.samples = 400;
        let lrs: Vec<f64> = draw_random(&many).iter().map(|d| d[0].value.as_float().unwrap()).collect();
        let below = lrs.iter().filter(|&&x| x < 1e-4).count();
        assert!((120..280).contains(&below), "{below} of 400 below the log midpoint");
    }

    #[test]
    fn combinations_cross_grid_with_draws() {
        let s = spec(RANDOM);
        let combos = combinations(&s);
        assert_eq!(combos.len(), 10);
        assert_eq!(combos[0][0].value, toml::Value::Integer(4));
        assert_eq!(combos[5][0].value, toml::Value::Integer(8));
        // The same draws are paired with each grid point.
        assert_eq!(combos[0][1..], combos[5][1..]);
        let keys: Vec<&str> = combos[0].iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, s.varied_keys());

        let grid = spec("name = \"g\"\nbase = \"b.toml\"\n[grid]\n\"a.x\" = [1, 2, 3]\n\"b.y\" = [\"p\", \"q\"]\n");
        let combos = combinations(&grid);
        assert_eq!(combos.len(), 6);
        let pairs: Vec<String> = combos.iter().map(|c| format!("{}{}", c[0].value, format_value(&c[1].value))).collect();
        assert_eq!(pairs, ["1p", "1q", "2p", "2q", "3p", "3q"]);
        assert_eq!(combinations(&spec("name = \"g\"\nbase = \"b.toml\"\n")), vec![Vec::<ParamValue>::new()]);
    }

    #[test]
    fn overrides_round_trip_through_the_config_loader() {
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let args = [
            override_arg("trainer.lr", &toml::Value::Float(2.0), &defaults),
            override_arg("trainer.schedule", &toml::Value::String("cosine".into()), &defaults),
            override_arg("rollout.group_size", &toml::Value::Integer(3), &defaults),
            override_arg("env.options.label", &toml::Value::String("7".into()), &defaults),
            override_arg("trainer.betas", &toml::Value::Array(vec![0.5.into(), 0.75.into()]), &defaults),
        ];
        assert_eq!(args[0], "trainer.lr=2.0");
        assert_eq!(args[1], "trainer.schedule=cosine");
        assert_eq!(args[3], "env.options.label=\"7\"");
        let cfg = config::from_toml_str("", "test", &args).unwrap();
        assert_eq!(cfg.trainer.lr, 2.0);
        assert_eq!(cfg.rollout.group_size, 3);
        assert_eq!(cfg.trainer.betas, [0.5, 0.75]);
        assert_eq!(cfg.env.options["label"], toml::Value::String("7".into()));
        assert_eq!(toml::Value::try_from(cfg.trainer.schedule).unwrap(), toml::Value::String("cosine".into()));
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(format_value(&toml::Value::Float(1e-4)), "1e-4");
        assert_eq!(format_value(&toml::Value::Float(0.25)), "0.25");
        assert_eq!(format_value(&toml::Value::Float(0.000123456789)), "1.235e-4");
        assert_eq!(short_names(&["trainer.lr".into(), "rollout.group_size".into()]), ["lr", "group_size"]);
        assert_eq!(short_names(&["trainer.lr".into(), "sft.lr".into()]), ["trainer.lr", "sft.lr"]);
    }

    #[test]
    fn plan_checks_every_trial_and_detects_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.toml"), "[run]\nname = \"b\"\nseed = 3\nsteps = 7\n").unwrap();
        let sweep = dir.path().join("sweep.toml");
        let text = "name = \"p\"\nbase = \"base.toml\"\nseeds = [1, 2]\n[grid]\n\"trainer.lr\" = [1e-4, 3e-4]\n";
        let s = parse_sweep(text, &sweep).unwrap();
        let plan = plan_sweep(&s, Path::new("out")).unwrap();
        let ids: Vec<&str> = plan.list.trials.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["s00-seed1", "s00-seed2", "s01-seed1", "s01-seed2"]);
        assert_eq!(plan.configs[3].trainer.lr, 3e-4);
        assert_eq!(plan.configs[3].run.seed, 2);
        assert_eq!(plan.configs[3].run.dir, "out/runs/s01-seed2");
        assert_eq!(plan.list.trials[0].steps, 7);
        assert_eq!(plan.list.settings[1].label, "lr=3e-4");
        assert_eq!(plan.list.difference(&plan.list.clone()), None);

        // JSON round trip keeps the list equal (floats and integers keep their types).
        let json = serde_json::to_string(&plan.list).unwrap();
        let back: TrialList = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan.list);

        let changed = parse_sweep(&text.replace("3e-4", "5e-4"), &sweep).unwrap();
        let diff = plan.list.difference(&plan_sweep(&changed, Path::new("out")).unwrap().list).unwrap();
        assert!(diff.contains("s01") && diff.contains("lr=5e-4"), "{diff}");
        let mut edited = plan.list.clone();
        edited.base_config = edited.base_config.replace("steps = 7", "steps = 8");
        let diff = plan.list.difference(&edited).unwrap();
        assert!(diff.ends_with("changed in run.steps"), "{diff}");
        // A trials.json written before a config key existed: that key at its default is no change.
        let mut older = plan.list.clone();
        older.base_config = older.base_config.lines().filter(|l| !l.starts_with("dtype =")).collect::<Vec<_>>().join("\n");
        assert_ne!(older.base_config, plan.list.base_config, "the resolved config has policy.dtype");
        assert_eq!(older.difference(&plan.list), None);
        let fewer_seeds = parse_sweep(&text.replace("[1, 2]", "[1]"), &sweep).unwrap();
        assert!(plan.list.difference(&plan_sweep(&fewer_seeds, Path::new("out")).unwrap().list).is_some());

        // No seeds: the base config's own seed.
        let s = parse_sweep("name = \"p\"\nbase = \"base.toml\"\n", &sweep).unwrap();
        assert_eq!(plan_sweep(&s, Path::new("out")).unwrap().list.trials[0].id, "s00-seed3");

        // A key the run config lacks, or a bad value, names the trial and the key.
        let bad = parse_sweep("name = \"p\"\nbase = \"base.toml\"\n[grid]\n\"trainer.lrr\" = [1]\n", &sweep).unwrap();
        let e = crate::cli::error_text(&plan_sweep(&bad, Path::new("out")).unwrap_err());
        assert!(e.contains("trial s00-seed3") && e.contains("trainer.lrr") && e.contains("sweep.toml"), "{e}");
        let bad = parse_sweep("name = \"p\"\nbase = \"base.toml\"\n[grid]\n\"trainer.lr\" = [-1.0]\n", &sweep).unwrap();
        let e = crate::cli::error_text(&plan_sweep(&bad, Path::new("out")).unwrap_err());
        assert!(e.contains("trainer.lr") && e.contains("> 0"), "{e}");
        let missing = parse_sweep("name = \"p\"\nbase = \"nope.toml\"\n", &sweep).unwrap();
        let e = crate::cli::error_text(&plan_sweep(&missing, Path::new("out")).unwrap_err());
        assert!(e.contains("nope.toml"), "{e}");
    }
}
