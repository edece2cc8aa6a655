//! `memrl bench policy`: learner and decode throughput of memrl on a real model, each next to
//! PyTorch / transformers running the same model on the same machine in the same run.
//!
//! memrl's side is `memrl_policies::train::bench::{learner_throughput, decode_throughput}`; the
//! peer's side is the reference scripts (see [`super::peer`]). Measurements run one after the
//! other (never two at once) with the same thread count. The machine may be shared, so the
//! load average is recorded before and after, and the learner is also reported in tokens per
//! CPU-second, which other tenants disturb much less than wall-clock time.
//!
//! The model is a real one (GGUF / HF directory) or a random-init one of a named shape
//! (`--model random:qwen2.5-0.5b`, see [`super::model_source`]); the learner is also reported as model
//! FLOPs utilisation when the device's peak is known (`--peak-tflops`, or by GPU name).

use super::flops::{MfuReport, cuda_device_name, learner_mfu};
use super::model_source::ModelSource;
use super::peer::{self, DECODE_SCRIPT, LEARNER_SCRIPT, PeerDecode, PeerLearner};
use anyhow::{Context, Result};
use memrl_policies::train::TrainBackend;
use memrl_policies::train::bench::{DecodeBenchReport, LearnerBenchConfig, LearnerBenchReport, decode_throughput, learner_throughput};
use memrl_policies::train::lora::{LoraConfig, apply_lora};
use memrl_policies::{Backend, BurnBackend, DeviceSpec, Precision};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where the SmolLM2-135M-Instruct GGUF lives when neither `--model` nor `$MEMRL_SMOLLM2_GGUF` says.
pub const DEFAULT_MODEL: &str = ".cache/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Which measurements to run.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Forward + backward + clip + AdamW.
    Learner,
    /// Greedy decode through the generation engine.
    Decode,
}

/// Which tensor backend memrl's side runs on.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchBackend {
    /// burn, flex CPU backend (every build).
    Burn,
    /// libtorch through tch (a build with `--features tch`), on `--device`.
    Tch,
}

/// Arguments of `memrl bench policy`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchPolicyArgs {
    /// Model: a .gguf file, an HF directory, or `random:NAME` for a random-init model of a named
    /// shape (`qwen2.5-0.5b`, `smollm2-135m`, `tiny-qwen2`; scripts/reference/random_shapes.json)
    /// (default: `$MEMRL_SMOLLM2_GGUF`, else the SmolLM2-135M-Instruct GGUF that
    /// scripts/fetch-model.sh places under .cache/).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Python interpreter with torch + transformers for the peer (default: `$MEMRL_PEER_PYTHON`,
    /// else `.venv-peer/bin/python` when it exists (the newest torch and transformers:
    /// `scripts/setup-python-venv.sh --peer`), else `$MEMRL_PYTHON`, else `python3`).
    #[arg(long)]
    pub python: Option<String>,
    /// Measure memrl only.
    #[arg(long)]
    pub no_peer: bool,
    /// Only this measurement (default: both).
    #[arg(long, value_enum)]
    pub only: Option<Part>,
    /// Small sizes (learner 1 × 64, decode prompt 16 + 16 new, best of 2) to exercise the whole path quickly.
    #[arg(long)]
    pub quick: bool,
    /// Seconds each peer script may run before it is stopped.
    #[arg(long, default_value_t = 1800)]
    pub peer_timeout: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Tensor backend for memrl's side (`tch` needs a build with `--features tch`).
    #[arg(long, value_enum, default_value_t = BenchBackend::Burn)]
    pub backend: BenchBackend,
    /// Device for `--backend tch`: `cpu` or `cuda:N` (burn runs on the CPU only).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Compute precision: `f32`, or `bf16` (`--backend tch`: bf16 matmuls and attention with f32
    /// master weights and AdamW state; bf16 weights for decode). The peers use the same
    /// (`torch.autocast` bf16 over an f32 model for the learner, a bf16 model for decode).
    #[arg(long, default_value = "f32")]
    pub dtype: Precision,
    /// Learner rows per step (default 4, 1 with --quick).
    #[arg(long)]
    pub learner_batch: Option<usize>,
    /// Learner tokens per row (default 256, 64 with --quick).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Timed learner steps (default 3, 1 with --quick; one untimed warm-up step first).
    #[arg(long)]
    pub learner_steps: Option<usize>,
    /// Decode batch sizes, comma-separated (default 1,8), e.g. `--decode-batches 1,32,128`.
    #[arg(long, value_delimiter = ',')]
    pub decode_batches: Option<Vec<usize>>,
    /// Prompt tokens per decode row (default 64, 16 with --quick).
    #[arg(long)]
    pub prompt_tokens: Option<usize>,
    /// New tokens per decode row (default 64, 16 with --quick).
    #[arg(long)]
    pub new_tokens: Option<usize>,
    /// Peak dense TFLOP/s of the device, for MFU (default: by GPU name on CUDA — H100/H200
    /// bf16 989, H100 PCIe 756, A100 312; none on the CPU, so no MFU there unless given).
    #[arg(long)]
    pub peak_tflops: Option<f64>,
    /// Train LoRA adapters of this rank instead of the full model in memrl's learner (burn, no
    /// peer): alpha = 2·rank on `[policy.lora]`'s default targets (q, k, v, o projections).
    #[arg(long)]
    pub lora_rank: Option<usize>,
}

/// Shapes of one run of the benchmark.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyBenchSizes {
    /// Learner settings (batch × seq, warm-up and timed steps).
    pub learner: LearnerBenchConfig,
    /// Decode batch sizes.
    pub decode_batches: Vec<usize>,
    /// Prompt tokens per decode row.
    pub prompt_tokens: usize,
    /// New tokens per decode row.
    pub new_tokens: usize,
    /// Timed decode repeats (the fastest counts).
    pub repeats: usize,
}

impl PolicyBenchSizes {
    /// Learner 4 × 256 (1 warm-up, 3 timed steps); decode batch 1 and 8, prompt 64 + 64 new, best of 3.
    pub fn full() -> Self {
        PolicyBenchSizes { learner: LearnerBenchConfig::default(), decode_batches: vec![1, 8], prompt_tokens: 64, new_tokens: 64, repeats: 3 }
    }
    /// Learner 1 × 64 (1 warm-up, 1 timed step); decode batch 1 and 8, prompt 16 + 16 new, best
    /// of 2 (decode time is `total − prefill`: with fewer new tokens, noise on a busy machine can
    /// exceed it).
    pub fn quick() -> Self {
        let learner = LearnerBenchConfig { batch: 1, seq: 64, warmup_steps: 1, steps: 1, ..LearnerBenchConfig::default() };
        PolicyBenchSizes { learner, decode_batches: vec![1, 8], prompt_tokens: 16, new_tokens: 16, repeats: 2 }
    }
}

impl BenchPolicyArgs {
    /// The sizes: `--quick` or full, then each explicit size flag.
    pub fn sizes(&self) -> Result<PolicyBenchSizes> {
        let mut s = if self.quick { PolicyBenchSizes::quick() } else { PolicyBenchSizes::full() };
        if let Some(b) = self.learner_batch {
            s.learner.batch = b;
        }
        if let Some(n) = self.seq_len {
            s.learner.seq = n;
        }
        if let Some(n) = self.learner_steps {
            s.learner.steps = n;
        }
        if let Some(b) = &self.decode_batches {
            s.decode_batches = b.clone();
        }
        if let Some(n) = self.prompt_tokens {
            s.prompt_tokens = n;
        }
        if let Some(n) = self.new_tokens {
            s.new_tokens = n;
        }
        anyhow::ensure!(s.learner.batch >= 1, "--learner-batch: expected >= 1");
        anyhow::ensure!(s.learner.seq >= 2, "--seq-len: expected >= 2");
        anyhow::ensure!(s.learner.steps >= 1, "--learner-steps: expected >= 1");
        anyhow::ensure!(!s.decode_batches.is_empty() && s.decode_batches.iter().all(|&b| b >= 1), "--decode-batches: expected sizes >= 1, e.g. 1,32,128");
        anyhow::ensure!(s.prompt_tokens >= 1, "--prompt-tokens: expected >= 1");
        anyhow::ensure!(s.new_tokens >= 2, "--new-tokens: expected >= 2");
        if let Some(p) = self.peak_tflops {
            anyhow::ensure!(p.is_finite() && p > 0.0, "--peak-tflops {p}: expected a positive number");
        }
        Ok(s)
    }
}

/// One line of the comparison table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// What is measured.
    pub measure: String,
    /// memrl's figure.
    pub memrl: f64,
    /// The peer's figure, when it ran.
    pub peer: Option<f64>,
    /// `memrl / peer`, when the peer ran.
    pub ratio: Option<f64>,
}

/// One side's result for a part: the peer's figures or why they are missing.
#[derive(Debug, Clone, Serialize)]
pub struct PartResult<M, P> {
    /// memrl's report.
    pub memrl: M,
    /// The peer's parsed output.
    pub peer: Option<P>,
    /// Why `peer` is missing.
    pub peer_error: Option<String>,
}

/// Everything `memrl bench policy` measured.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyBenchReport {
    /// `"policy"`.
    pub bench: &'static str,
    /// The model measured.
    pub model: String,
    /// memrl's backend, as it names itself (e.g. `burn-flex+autodiff`, `tch-cpu`).
    pub backend: String,
    /// The device (`cpu`, `cuda:N`) both sides ran on.
    pub device: String,
    /// The compute precision both sides used.
    pub dtype: String,
    /// The GPU's name (CUDA runs, from nvidia-smi).
    pub gpu: Option<String>,
    /// Learner FLOPs and MFU.
    pub mfu: Option<MfuReport>,
    /// Whether `--quick` sizes were used.
    pub quick: bool,
    /// The sizes.
    pub sizes: PolicyBenchSizes,
    /// Threads memrl's pool uses; the peers get the same number.
    pub threads: usize,
    /// Logical CPUs of the machine.
    pub cpus: usize,
    /// 1/5/15-minute load averages before the first measurement (Linux).
    pub load_before: Option<[f64; 3]>,
    /// The same after the last.
    pub load_after: Option<[f64; 3]>,
    /// The interpreter the peer ran with (None with `--no-peer`).
    pub python: Option<String>,
    /// Learner figures.
    pub learner: Option<PartResult<LearnerBenchReport, PeerLearner>>,
    /// Decode figures, one memrl report per batch size.
    pub decode: Option<PartResult<Vec<DecodeBenchReport>, PeerDecode>>,
    /// The table: memrl next to the peer, with ratios.
    pub rows: Vec<Row>,
}

/// Reads `/proc/loadavg`.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let v: Vec<f64> = text.split_whitespace().take(3).filter_map(|f| f.parse().ok()).collect();
    (v.len() == 3).then(|| [v[0], v[1], v[2]])
}

/// The model path from `--model`, `$MEMRL_SMOLLM2_GGUF` or [`DEFAULT_MODEL`], checked to exist.
pub fn resolve_model(arg: Option<&Path>) -> Result<PathBuf> {
    let path = match (arg, std::env::var_os("MEMRL_SMOLLM2_GGUF")) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) => PathBuf::from(p),
        (None, None) => PathBuf::from(DEFAULT_MODEL),
    };
    anyhow::ensure!(path.exists(), "model not found at {}: run scripts/fetch-model.sh (or pass --model / set MEMRL_SMOLLM2_GGUF)", path.display());
    Ok(path)
}

/// `memrl / peer` when both are positive and finite (a non-positive rate is a timing artifact:
/// decode timed no longer than its prefill on a busy machine).
fn ratio(memrl: f64, peer: Option<f64>) -> Option<f64> {
    peer.filter(|p| p.is_finite() && *p > 0.0 && memrl.is_finite() && memrl > 0.0).map(|p| memrl / p)
}

fn row(measure: String, memrl: f64, peer: Option<f64>) -> Row {
    Row { ratio: ratio(memrl, peer), measure, memrl, peer }
}

/// Builds the table from the parts that ran.
pub fn table(report: &PolicyBenchReport) -> Vec<Row> {
    let mut rows = Vec::new();
    if let Some(l) = &report.learner {
        let c = &l.memrl.config;
        rows.push(row(format!("learner tok/s (fwd+bwd+AdamW, {}×{})", c.batch, c.seq), l.memrl.tokens_per_s, l.peer.as_ref().map(|p| p.tokens_per_s)));
        rows.push(row("learner tok per CPU-second".into(), l.memrl.tokens_per_cpu_s, l.peer.as_ref().map(|p| p.tokens_per_cpu_s)));
        if let Some(m) = report.mfu.as_ref().filter(|m| m.memrl.is_some()) {
            let peak = m.peak_tflops.unwrap_or(f64::NAN);
            rows.push(row(format!("learner MFU % (peak {peak} TFLOP/s)"), m.memrl.unwrap_or(f64::NAN) * 100.0, m.peer.map(|p| p * 100.0)));
        }
    }
    if let Some(d) = &report.decode {
        for m in &d.memrl {
            let peer = d.peer.as_ref().and_then(|p| p.runs.iter().find(|r| r.batch == m.batch));
            rows.push(row(
                format!("decode tok/s, batch {} ({} + {} new)", m.batch, m.prompt_tokens, m.new_tokens),
                m.decode_tokens_per_s,
                peer.map(|r| r.decode_tokens_per_s),
            ));
        }
    }
    rows
}

/// Runs the benchmark: memrl's learner, the peer's learner, memrl's decode, the peer's decode.
pub fn bench_policy(args: &BenchPolicyArgs) -> Result<PolicyBenchReport> {
    if args.backend == BenchBackend::Burn && args.device != DeviceSpec::Cpu {
        anyhow::bail!("--device {}: the burn backend runs on the CPU only (use --backend tch)", args.device);
    }
    if args.backend == BenchBackend::Burn && args.dtype != Precision::F32 {
        anyhow::bail!("--dtype {}: the burn backend computes in f32 only (use --backend tch)", args.dtype);
    }
    if args.lora_rank.is_some() && (args.backend != BenchBackend::Burn || !args.no_peer) {
        anyhow::bail!("--lora-rank: memrl's LoRA learner runs on --backend burn with --no-peer (the peer trains the full model)");
    }
    let model = ModelSource::from_arg(args.model.as_deref())?;
    let sizes = args.sizes()?;
    let threads = rayon::current_num_threads();
    let python = (!args.no_peer).then(|| peer::interpreter(args.python.as_deref()));
    let timeout = Duration::from_secs(args.peer_timeout);
    let (model_flag, model_value) = model.peer_flag();
    let setup = [("--device", args.device.to_string()), ("--dtype", args.dtype.to_string())];
    let gpu = match args.device {
        DeviceSpec::Cuda(n) => cuda_device_name(n),
        DeviceSpec::Cpu => None,
    };
    let mut report = PolicyBenchReport {
        bench: "policy",
        model: model.display(),
        backend: String::new(),
        device: args.device.to_string(),
        dtype: args.dtype.to_string(),
        gpu: gpu.clone(),
        mfu: None,
        quick: args.quick,
        sizes: sizes.clone(),
        threads,
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        load_before: load_average(),
        load_after: None,
        python: python.clone(),
        learner: None,
        decode: None,
        rows: vec![],
    };
    if args.only != Some(Part::Decode) {
        let l = &sizes.learner;
        let (name, memrl) = match args.backend {
            BenchBackend::Burn => match args.lora_rank {
                Some(rank) => memrl_lora_learner(rank, &model, l)?,
                None => memrl_learner(BurnBackend::flex_autodiff(), &model, l)?,
            },
            BenchBackend::Tch => tch::learner(args.device, args.dtype, threads, &model, l)?,
        };
        report.backend = name;
        let script_args = [
            (model_flag, model_value.clone()),
            setup[0].clone(),
            setup[1].clone(),
            ("--threads", threads.to_string()),
            ("--batch", l.batch.to_string()),
            ("--seq", l.seq.to_string()),
            ("--warmup", l.warmup_steps.to_string()),
            ("--steps", l.steps.to_string()),
            ("--lr", l.lr.to_string()),
        ];
        let (peer, peer_error) = peer::run(python.as_deref(), LEARNER_SCRIPT, flatten(&script_args), timeout, |out| {
            let p = peer::parse_learner(out, l.batch, l.seq, threads)?;
            peer::check_setup(LEARNER_SCRIPT, p.device.as_deref(), p.dtype.as_deref(), &setup[0].1, &setup[1].1)?;
            Ok(p)
        });
        report.mfu = Some(learner_mfu(&model.config()?, l.seq, args.peak_tflops, gpu.as_deref(), memrl.tokens_per_s, peer.as_ref().map(|p| p.tokens_per_s)));
        report.learner = Some(PartResult { memrl, peer, peer_error });
    }
    if args.only != Some(Part::Learner) {
        let (name, memrl) = match args.backend {
            BenchBackend::Burn => memrl_decode(BurnBackend::flex(), &model, &sizes)?,
            BenchBackend::Tch => tch::decode(args.device, args.dtype, threads, &model, &sizes)?,
        };
        if report.backend.is_empty() {
            report.backend = name;
        }
        let batches = sizes.decode_batches.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",");
        let script_args = [
            (model_flag, model_value.clone()),
            setup[0].clone(),
            setup[1].clone(),
            ("--threads", threads.to_string()),
            ("--prompt-tokens", sizes.prompt_tokens.to_string()),
            ("--new-tokens", sizes.new_tokens.to_string()),
            ("--batches", batches),
            ("--repeats", sizes.repeats.to_string()),
        ];
        let mut script_args = flatten(&script_args);
        script_args.push("--no-venv".into());
        let (peer, peer_error) = peer::run(python.as_deref(), DECODE_SCRIPT, script_args, timeout, |out| {
            let p = peer::parse_decode(out, &sizes.decode_batches, sizes.prompt_tokens, sizes.new_tokens, threads)?;
            peer::check_setup(DECODE_SCRIPT, p.device.as_deref(), p.dtype.as_deref(), &setup[0].1, &setup[1].1)?;
            Ok(p)
        });
        report.decode = Some(PartResult { memrl, peer, peer_error });
    }
    report.load_after = load_average();
    report.rows = table(&report);
    Ok(report)
}

/// memrl's learner benchmark on `backend` (autodiff): the backend's name and the report.
fn memrl_learner<B: TrainBackend>(backend: B, model: &ModelSource, l: &LearnerBenchConfig) -> Result<(String, LearnerBenchReport)> {
    let name = backend.name();
    let mut m = model.load(backend).context("the learner benchmark's model")?;
    Ok((name, learner_throughput(&mut m, l).context("memrl learner benchmark")?))
}

/// memrl's learner benchmark training rank-`rank` LoRA adapters over the burn backend (the
/// base frozen; AdamW moments for the adapters only).
fn memrl_lora_learner(rank: usize, model: &ModelSource, l: &LearnerBenchConfig) -> Result<(String, LearnerBenchReport)> {
    let base = model.load(BurnBackend::flex_autodiff()).context("the learner benchmark's model")?;
    let targets = crate::config::LoraConfig::default().target_modules;
    let config = LoraConfig { rank, alpha: 2.0 * rank as f64, dropout: 0.0, target_modules: targets, seed: 0 };
    let mut m = apply_lora(base, &config).context("--lora-rank")?;
    Ok((format!("{} r={rank}", m.backend.name()), learner_throughput(&mut m, l).context("memrl learner benchmark")?))
}

/// memrl's decode benchmark on `backend`, one report per decode batch size.
fn memrl_decode<B: Backend>(backend: B, model: &ModelSource, sizes: &PolicyBenchSizes) -> Result<(String, Vec<DecodeBenchReport>)> {
    let name = backend.name();
    let m = Arc::new(model.load(backend).context("the decode benchmark's model")?);
    let reports = sizes
        .decode_batches
        .iter()
        .map(|&b| decode_throughput(m.clone(), b, sizes.prompt_tokens, sizes.new_tokens, sizes.repeats).context("memrl decode benchmark"))
        .collect::<Result<Vec<_>>>()?;
    Ok((name, reports))
}

/// The libtorch side of the benchmark (a build with the `tch` feature).
#[cfg(feature = "tch")]
mod tch {
    use super::*;
    use memrl_policies::TchBackend;

    fn backend(device: DeviceSpec, dtype: Precision, threads: usize, autodiff: bool) -> Result<TchBackend> {
        // libtorch's intra-op pool gets the same thread count as memrl's rayon pool and the peer.
        TchBackend::set_num_threads(threads);
        Ok(TchBackend::new(device, autodiff)?.with_precision(dtype))
    }
    pub(super) fn learner(
        device: DeviceSpec,
        dtype: Precision,
        threads: usize,
        model: &ModelSource,
        l: &LearnerBenchConfig,
    ) -> Result<(String, LearnerBenchReport)> {
        memrl_learner(backend(device, dtype, threads, true)?, model, l)
    }
    pub(super) fn decode(
        device: DeviceSpec,
        dtype: Precision,
        threads: usize,
        model: &ModelSource,
        sizes: &PolicyBenchSizes,
    ) -> Result<(String, Vec<DecodeBenchReport>)> {
        memrl_decode(backend(device, dtype, threads, false)?, model, sizes)
    }
}

/// Without the `tch` feature `--backend tch` is refused with how to get it.
#[cfg(not(feature = "tch"))]
mod tch {
    use super::*;

    /// The error `--backend tch` gives in a build without the `tch` feature.
    pub(super) const NOT_BUILT: &str =
        "--backend tch: memrl was built without the tch feature: cargo build --features tch (needs PyTorch 2.11.0, see scripts/test.sh)";

    pub(super) fn learner(_: DeviceSpec, _: Precision, _: usize, _: &ModelSource, _: &LearnerBenchConfig) -> Result<(String, LearnerBenchReport)> {
        anyhow::bail!(NOT_BUILT)
    }
    pub(super) fn decode(_: DeviceSpec, _: Precision, _: usize, _: &ModelSource, _: &PolicyBenchSizes) -> Result<(String, Vec<DecodeBenchReport>)> {
        anyhow::bail!(NOT_BUILT)
    }
}

fn flatten(pairs: &[(&str, String)]) -> Vec<String> {
    pairs.iter().flat_map(|(k, v)| [k.to_string(), v.clone()]).collect()
}

fn fmt_load(l: Option<[f64; 3]>) -> String {
    l.map(|[a, b, c]| format!("{a:.2} {b:.2} {c:.2}")).unwrap_or_else(|| "unknown".into())
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "–".into())
}

/// The report as a text table with the peer's versions, the load and any peer failure.
pub fn format_report(r: &PolicyBenchReport) -> String {
    let mut s = String::new();
    s += &format!("memrl bench policy: {} on {}{}\n", r.model, r.backend, if r.quick { " (--quick sizes)" } else { "" });
    s += &format!("device {} ({}), dtype {}\n", r.device, r.gpu.as_deref().unwrap_or("no GPU"), r.dtype);
    if let Some(m) = &r.mfu {
        s += &format!("learner FLOPs/token {:.3e}: {}; peak: {}\n", m.flops_per_token, m.formula, m.peak_source);
    }
    s += &format!(
        "threads: {} for memrl and for the peer, on {} CPUs; load average (1/5/15 min) before {}, after {}\n",
        r.threads,
        r.cpus,
        fmt_load(r.load_before),
        fmt_load(r.load_after)
    );
    s += "the machine may be shared: wall-clock tok/s depend on other load; tok per CPU-second much less\n";
    let versions = r
        .learner
        .as_ref()
        .and_then(|l| l.peer.as_ref().map(|p| (p.torch.clone(), p.transformers.clone())))
        .or_else(|| r.decode.as_ref().and_then(|d| d.peer.as_ref().map(|p| (p.torch.clone(), p.transformers.clone()))));
    match (&r.python, versions) {
        (None, _) => s += "peer: not run (--no-peer)\n",
        (Some(py), Some((t, tf))) => s += &format!("peer: torch {t} + transformers {tf} ({py})\n"),
        (Some(py), None) => s += &format!("peer: unavailable ({py})\n"),
    }
    for (part, error) in
        [("learner", r.learner.as_ref().and_then(|l| l.peer_error.as_ref())), ("decode", r.decode.as_ref().and_then(|d| d.peer_error.as_ref()))]
    {
        if let Some(e) = error {
            s += &format!("peer {part} unavailable, no ratio: {e}\n");
        }
    }
    s += &format!("{:<44} {:>10} {:>10} {:>11}\n", "measure", "memrl", "peer", "memrl/peer");
    for row in &r.rows {
        s += &format!("{:<44} {:>10.1} {:>10} {:>11}\n", row.measure, row.memrl, fmt_opt(row.peer, 1), fmt_opt(row.ratio, 2));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_needs_a_positive_finite_peer() {
        assert_eq!(ratio(20.0, Some(10.0)), Some(2.0));
        assert_eq!(ratio(20.0, None), None);
        assert_eq!(ratio(20.0, Some(0.0)), None);
        assert_eq!(ratio(20.0, Some(f64::NAN)), None);
        assert_eq!(ratio(-20.0, Some(10.0)), None);
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn tch_backend_is_refused_without_the_feature() {
        let m = ModelSource::File(PathBuf::from("m.gguf"));
        let e = tch::learner(DeviceSpec::Cpu, Precision::F32, 1, &m, &LearnerBenchConfig::default()).unwrap_err();
        assert!(e.to_string().contains("built without the tch feature: cargo build --features tch"), "{e}");
        let e = tch::decode(DeviceSpec::Cpu, Precision::F32, 1, &m, &PolicyBenchSizes::quick()).unwrap_err();
        assert!(e.to_string().contains("cargo build --features tch"), "{e}");
    }

    #[test]
    fn burn_refuses_a_cuda_device() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: BenchPolicyArgs,
        }
        let cli = Cli::try_parse_from(["bench", "--device", "cuda:1", "--no-peer"]).unwrap();
        let e = bench_policy(&cli.args).unwrap_err();
        assert!(e.to_string().contains("burn backend runs on the CPU only"), "{e}");
        assert!(Cli::try_parse_from(["bench", "--device", "gpu"]).is_err());
        assert_eq!(Cli::try_parse_from(["bench", "--backend", "tch"]).unwrap().args.backend, BenchBackend::Tch);
    }

    #[test]
    fn size_flags_override_and_are_checked() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: BenchPolicyArgs,
        }
        let parse = |a: &[&str]| Cli::try_parse_from(std::iter::once("bench").chain(a.iter().copied())).unwrap().args;
        let s = parse(&["--decode-batches", "1,32,128", "--learner-batch", "8", "--seq-len", "1024", "--new-tokens", "128"]).sizes().unwrap();
        assert_eq!((s.decode_batches.clone(), s.learner.batch, s.learner.seq, s.new_tokens, s.prompt_tokens), (vec![1, 32, 128], 8, 1024, 128, 64));
        let q = parse(&["--quick", "--seq-len", "32"]).sizes().unwrap();
        assert_eq!((q.learner.batch, q.learner.seq), (1, 32));
        assert!(parse(&["--seq-len", "1"]).sizes().unwrap_err().to_string().contains("--seq-len"));
        assert!(parse(&["--decode-batches", "0"]).sizes().unwrap_err().to_string().contains("--decode-batches"));
        assert!(parse(&["--peak-tflops=-1"]).sizes().unwrap_err().to_string().contains("--peak-tflops"));
        assert_eq!(parse(&["--dtype", "bf16"]).dtype, Precision::Bf16);
        assert!(Cli::try_parse_from(["bench", "--dtype", "fp8"]).is_err());
        let e = bench_policy(&parse(&["--dtype", "bf16", "--no-peer"])).unwrap_err().to_string();
        assert!(e.contains("burn backend computes in f32 only"), "{e}");
    }

    #[test]
    fn quick_sizes_are_smaller_than_full() {
        let (q, f) = (PolicyBenchSizes::quick(), PolicyBenchSizes::full());
        assert!(q.learner.batch * q.learner.seq < f.learner.batch * f.learner.seq);
        assert!(q.new_tokens < f.new_tokens && q.decode_batches == f.decode_batches);
        assert_eq!((f.learner.batch, f.learner.seq, f.prompt_tokens, f.new_tokens), (4, 256, 64, 64));
    }
}
