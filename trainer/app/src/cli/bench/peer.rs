//! The PyTorch / transformers peers of `memrl bench policy`: runs
//! `scripts/reference/torch_learner_bench.py` and `scripts/reference/hf_generate_bench.py` as
//! subprocesses of a chosen Python interpreter and parses the one JSON object each prints.
//!
//! A peer that cannot run (interpreter missing, torch not installed, a crash, a timeout, output
//! of another shape) is a [`PeerError`] with the reason, never a made-up number.

use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// File name of the learner peer script in `scripts/reference/`.
pub const LEARNER_SCRIPT: &str = "torch_learner_bench.py";
/// File name of the decode peer script in `scripts/reference/`.
pub const DECODE_SCRIPT: &str = "hf_generate_bench.py";

/// Why a peer measurement is missing, in one line for the table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PeerError(pub String);

/// What `torch_learner_bench.py` prints (fields memrl reads; others are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerLearner {
    /// `"torch"`.
    pub library: String,
    /// torch version.
    pub torch: String,
    /// transformers version.
    pub transformers: String,
    /// Intra-op threads torch used.
    pub threads: usize,
    /// The device it ran on (`cpu`, `cuda:N`); absent from older scripts' output.
    #[serde(default)]
    pub device: Option<String>,
    /// The compute precision (`f32`, `bf16`); absent from older scripts' output.
    #[serde(default)]
    pub dtype: Option<String>,
    /// Rows per step.
    pub batch: usize,
    /// Tokens per row.
    pub seq: usize,
    /// `batch · seq / median step wall time`.
    pub tokens_per_s: f64,
    /// `batch · seq / median step CPU time`.
    pub tokens_per_cpu_s: f64,
    /// Loss of the last step.
    pub last_loss: f64,
    /// Peak resident memory during the timed steps, MiB.
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
}

/// One batch size of `hf_generate_bench.py`'s output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerDecodeRun {
    /// Sequences decoded together.
    pub batch: usize,
    /// Fastest `generate(max_new_tokens=1)`, seconds.
    pub prefill_s: f64,
    /// Fastest `generate(max_new_tokens=N)`, seconds.
    pub total_s: f64,
    /// `batch · (N − 1) / (total − prefill)`.
    pub decode_tokens_per_s: f64,
    /// `batch · N / total`.
    pub end_to_end_tokens_per_s: f64,
}

/// What `hf_generate_bench.py` prints (fields memrl reads; others are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerDecode {
    /// `"transformers"`.
    pub library: String,
    /// torch version.
    pub torch: String,
    /// transformers version.
    pub transformers: String,
    /// Intra-op threads torch used.
    pub threads: usize,
    /// The device it ran on (`cpu`, `cuda:N`); absent from older scripts' output.
    #[serde(default)]
    pub device: Option<String>,
    /// The compute precision (`f32`, `bf16`); absent from older scripts' output.
    #[serde(default)]
    pub dtype: Option<String>,
    /// Tokens generated per row.
    pub new_tokens: usize,
    /// Prompt length of every row.
    pub prompt_tokens: usize,
    /// One entry per batch size.
    pub runs: Vec<PeerDecodeRun>,
}

/// Parses a peer's stdout: the last line that holds a JSON object (libraries may print other
/// lines first), with a JSON path in the error when a field is missing or of the wrong type.
pub fn parse_peer_output<T: serde::de::DeserializeOwned>(script: &str, stdout: &str) -> Result<T, PeerError> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| PeerError(format!("{script} printed no JSON object (stdout: {:?})", tail(stdout, 200))))?;
    let mut de = serde_json::Deserializer::from_str(line);
    serde_path_to_error::deserialize(&mut de).map_err(|e| PeerError(format!("{script}: unexpected output at `{}`: {}", e.path(), e.inner())))
}

/// Parses `torch_learner_bench.py`'s output and checks it measured the requested shape.
pub fn parse_learner(stdout: &str, batch: usize, seq: usize, threads: usize) -> Result<PeerLearner, PeerError> {
    let p: PeerLearner = parse_peer_output(LEARNER_SCRIPT, stdout)?;
    if (p.batch, p.seq, p.threads) != (batch, seq, threads) {
        return Err(PeerError(format!(
            "{LEARNER_SCRIPT} measured batch {} × seq {} on {} threads, asked for {batch} × {seq} on {threads}",
            p.batch, p.seq, p.threads
        )));
    }
    if !(p.tokens_per_s.is_finite() && p.tokens_per_s > 0.0 && p.tokens_per_cpu_s.is_finite() && p.tokens_per_cpu_s > 0.0) {
        return Err(PeerError(format!("{LEARNER_SCRIPT} reported non-positive throughput: {} tok/s, {} tok/CPU-s", p.tokens_per_s, p.tokens_per_cpu_s)));
    }
    Ok(p)
}

/// Parses `hf_generate_bench.py`'s output and checks it measured the requested shapes.
pub fn parse_decode(stdout: &str, batches: &[usize], prompt_tokens: usize, new_tokens: usize, threads: usize) -> Result<PeerDecode, PeerError> {
    let p: PeerDecode = parse_peer_output(DECODE_SCRIPT, stdout)?;
    let got: Vec<usize> = p.runs.iter().map(|r| r.batch).collect();
    if (p.prompt_tokens, p.new_tokens, p.threads) != (prompt_tokens, new_tokens, threads) || got != batches {
        return Err(PeerError(format!(
            "{DECODE_SCRIPT} measured batches {got:?}, prompt {} + {} new on {} threads; asked for {batches:?}, prompt {prompt_tokens} + {new_tokens} new on {threads}",
            p.prompt_tokens, p.new_tokens, p.threads
        )));
    }
    if let Some(r) = p.runs.iter().find(|r| !(r.decode_tokens_per_s.is_finite() && r.decode_tokens_per_s > 0.0)) {
        return Err(PeerError(format!(
            "{DECODE_SCRIPT} reported {} decode tok/s at batch {} (generation timed no longer than prefill: timing noise on a busy machine)",
            r.decode_tokens_per_s, r.batch
        )));
    }
    Ok(p)
}

/// Checks that a peer ran on the device and in the precision asked for (when it says).
pub fn check_setup(script: &str, device: Option<&str>, dtype: Option<&str>, want_device: &str, want_dtype: &str) -> Result<(), PeerError> {
    for (what, got, want) in [("device", device, want_device), ("dtype", dtype, want_dtype)] {
        if let Some(got) = got.filter(|g| *g != want) {
            return Err(PeerError(format!("{script} ran with {what} {got}, asked for {want}")));
        }
    }
    Ok(())
}

/// The last `n` characters of `s` (on a char boundary).
fn tail(s: &str, n: usize) -> &str {
    let s = s.trim_end();
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Finds `scripts/reference/` holding both peer scripts: under the current directory first,
/// then in the source tree this binary was built from.
pub fn find_reference_scripts() -> Result<PathBuf, PeerError> {
    let candidates = [PathBuf::from("scripts/reference"), Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/reference")];
    candidates.iter().find(|d| d.join(LEARNER_SCRIPT).is_file() && d.join(DECODE_SCRIPT).is_file()).cloned().ok_or_else(|| {
        PeerError(format!(
            "reference scripts {LEARNER_SCRIPT} / {DECODE_SCRIPT} not found in {} (run from the repository root)",
            candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(" or ")
        ))
    })
}

/// Runs `python script args…` and returns its stdout, or why it failed: the interpreter could
/// not start, the script exited non-zero (the last line of stderr says why, e.g.
/// `ModuleNotFoundError: No module named 'torch'`), or it ran past `timeout`.
pub fn run_script(python: &str, script: &Path, args: &[String], timeout: Duration) -> Result<String, PeerError> {
    let name = script.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Output goes to temp files, not pipes, so a chatty child never blocks on a full pipe while
    // this process waits for it.
    let mut out = tempfile::tempfile().map_err(|e| PeerError(format!("creating a temp file for {name}'s output: {e}")))?;
    let mut err = tempfile::tempfile().map_err(|e| PeerError(format!("creating a temp file for {name}'s output: {e}")))?;
    let clone = |f: &std::fs::File| f.try_clone().map_err(|e| PeerError(format!("temp file for {name}: {e}")));
    let mut child = Command::new(python)
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(clone(&out)?)
        .stderr(clone(&err)?)
        .spawn()
        .map_err(|e| PeerError(format!("cannot run the Python interpreter `{python}`: {e} (set --python or $MEMRL_PEER_PYTHON)")))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(PeerError(format!("{name} ran past {} s and was stopped", timeout.as_secs())));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(PeerError(format!("waiting for {name}: {e}"))),
        }
    };
    let read = |f: &mut std::fs::File| {
        use std::io::Seek;
        let mut s = String::new();
        f.seek(std::io::SeekFrom::Start(0)).and_then(|_| f.read_to_string(&mut s)).map(|_| s)
    };
    let stdout = read(&mut out).map_err(|e| PeerError(format!("reading {name}'s output: {e}")))?;
    if !status.success() {
        let stderr = read(&mut err).unwrap_or_default();
        let last = stderr.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("(no stderr)");
        return Err(PeerError(format!("`{python} {name}` exited with {status}: {}", tail(last, 300))));
    }
    Ok(stdout)
}

/// The peers' interpreter: `explicit` (`--python`), `$MEMRL_PEER_PYTHON`, the `.venv-peer` of the working
/// directory (the newest torch, made by `scripts/setup-python-venv.sh --peer`), `$MEMRL_PYTHON`
/// (the tch venv: torch 2.11, a slower peer on CPU), then `python3`.
pub fn interpreter(explicit: Option<&str>) -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|s| !s.is_empty());
    let local_peer_venv = Path::new(".venv-peer/bin/python");
    explicit
        .map(str::to_string)
        .or_else(|| var("MEMRL_PEER_PYTHON"))
        .or_else(|| local_peer_venv.is_file().then(|| local_peer_venv.display().to_string()))
        .or_else(|| var("MEMRL_PYTHON"))
        .unwrap_or_else(|| "python3".into())
}

/// Runs one peer script with `python` (None: `--no-peer`) and parses its output with `parse`:
/// the result, or why there is none.
pub fn run<P>(
    python: Option<&str>,
    script: &str,
    script_args: Vec<String>,
    timeout: Duration,
    parse: impl FnOnce(&str) -> Result<P, PeerError>,
) -> (Option<P>, Option<String>) {
    let Some(python) = python else { return (None, Some("not run (--no-peer)".into())) };
    let outcome = find_reference_scripts().and_then(|dir| run_script(python, &dir.join(script), &script_args, timeout)).and_then(|stdout| parse(&stdout));
    match outcome {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(e.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEARNER: &str = r#"{"library": "torch", "torch": "2.15.0", "transformers": "5.23.0", "threads": 2, "batch": 1, "seq": 64, "trainable_parameters": 134515008, "tokens_per_step": 64, "steps": [], "tokens_per_s": 30.5, "tokens_per_cpu_s": 16.0, "last_loss": 14.2, "rss_before_mib": 900.0, "peak_rss_mib": 2100.0}"#;

    #[test]
    fn learner_output_parses_and_shape_is_checked() {
        let p = parse_learner(&format!("some warning\n{LEARNER}\n"), 1, 64, 2).unwrap();
        assert_eq!((p.tokens_per_s, p.tokens_per_cpu_s, p.peak_rss_mib), (30.5, 16.0, Some(2100.0)));
        let e = parse_learner(LEARNER, 4, 256, 2).unwrap_err().to_string();
        assert!(e.contains("asked for 4 × 256"), "{e}");
    }

    #[test]
    fn malformed_peer_output_names_the_field() {
        let e = parse_learner(&LEARNER.replace("\"tokens_per_s\": 30.5", "\"tokens_per_s\": \"fast\""), 1, 64, 2).unwrap_err().to_string();
        assert!(e.contains("tokens_per_s") && e.contains(LEARNER_SCRIPT), "{e}");
        let e = parse_decode("Traceback ...\n", &[1], 16, 8, 2).unwrap_err().to_string();
        assert!(e.contains("no JSON object"), "{e}");
        let decode = r#"{"library": "transformers", "torch": "2", "transformers": "5", "threads": 2, "new_tokens": 8, "prompt_tokens": 16, "runs": [{"batch": 1, "prefill_s": 0.1, "total_s": 0.5, "decode_tokens_per_s": 17.5}]}"#;
        let e = parse_decode(decode, &[1], 16, 8, 2).unwrap_err().to_string();
        assert!(e.contains("runs[0]") && e.contains("end_to_end_tokens_per_s"), "{e}");
    }

    #[test]
    fn peer_setup_is_checked_when_reported() {
        assert!(check_setup(LEARNER_SCRIPT, None, None, "cuda:0", "bf16").is_ok());
        assert!(check_setup(LEARNER_SCRIPT, Some("cuda:0"), Some("bf16"), "cuda:0", "bf16").is_ok());
        let e = check_setup(LEARNER_SCRIPT, Some("cpu"), Some("bf16"), "cuda:0", "bf16").unwrap_err().to_string();
        assert!(e.contains("device cpu, asked for cuda:0"), "{e}");
        let p = parse_learner(&LEARNER.replace("\"threads\": 2", "\"device\": \"cuda:0\", \"dtype\": \"bf16\", \"threads\": 2"), 1, 64, 2).unwrap();
        assert_eq!((p.device.as_deref(), p.dtype.as_deref()), (Some("cuda:0"), Some("bf16")));
    }

    #[test]
    fn a_missing_interpreter_is_a_clear_error() {
        let e = run_script("/nonexistent/python3", Path::new("x.py"), &[], Duration::from_secs(5)).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/python3") && e.contains("--python"), "{e}");
    }
}
