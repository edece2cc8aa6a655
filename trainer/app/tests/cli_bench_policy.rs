//! `memrl bench policy --quick` end to end (the real binary) on SmolLM2-135M-Instruct: memrl's
//! learner and decode measurements, the peer scripts' invocation and parsing, ratios, and a
//! peer that cannot run. The model is the GGUF `scripts/fetch-model.sh` places (or
//! `$MEMRL_SMOLLM2_GGUF`); without it these tests fail, never skip.
//!
//! Most tests use a fake Python interpreter (a shell script printing the JSON the reference
//! scripts print), so they need no torch. `peer_outputs_parse_and_the_real_peer_runs` parses
//! outputs recorded from the real scripts and, when `$MEMRL_PEER_PYTHON` is set (.ci/run sets it
//! to `.venv-peer`, the newest torch: `scripts/setup-python-venv.sh --peer`), runs the real
//! scripts through the binary and checks that the peer is the torch that
//! scripts/requirements-peer.txt pins; under `MEMRL_CHECK_TRANSFORMERS=1` without
//! `$MEMRL_PEER_PYTHON` it fails.

use memrl_trainer::cli::bench::peer::{parse_decode, parse_learner};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The bench runs take both cores; running two at once would only slow both.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn gguf() -> PathBuf {
    let path = match std::env::var_os("MEMRL_SMOLLM2_GGUF") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join(".cache/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    assert!(path.is_file(), "SmolLM2 GGUF not found at {} — run scripts/fetch-model.sh or set MEMRL_SMOLLM2_GGUF", path.display());
    path
}

/// Runs `memrl bench policy --quick --model <gguf> <args>` from the repository root on 2 threads.
fn bench(args: &[&str]) -> Output {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let model = gguf();
    Command::new(env!("CARGO_BIN_EXE_memrl"))
        .args(["bench", "policy", "--quick", "--model"])
        .arg(&model)
        .args(args)
        .current_dir(repo_root())
        .env("RAYON_NUM_THREADS", "2")
        .env_remove("MEMRL_PYTHON")
        .env_remove("MEMRL_PEER_PYTHON")
        .output()
        .expect("memrl runs")
}

fn json_of(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "memrl failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// What `torch_learner_bench.py` printed for `--batch 1 --seq 64 --threads 2 --warmup 1 --steps 1`
/// (torch 2.15.0, transformers 5.23.0), on this project's 2-core machine under load.
const RECORDED_LEARNER: &str = r#"{"library": "torch", "torch": "2.15.0+cu132", "transformers": "5.23.0", "threads": 2, "batch": 1, "seq": 64, "trainable_parameters": 134515008, "tokens_per_step": 64, "steps": [{"forward_s": 3.405845291001242, "backward_s": 0.8446764620002796, "clip_s": 0.556101050999132, "optimizer_s": 3.3879123909991904, "total_s": 8.194535194999844, "cpu_s": 7.047662492000001}], "tokens_per_s": 7.810082997636234, "tokens_per_cpu_s": 9.081025101960854, "last_loss": 13.601306915283203, "rss_before_mib": 1278.57421875, "peak_rss_mib": 3321.34375}"#;
/// What `hf_generate_bench.py` printed for `--prompt-tokens 16 --new-tokens 16 --batches 1,8 --repeats 2 --no-venv`.
const RECORDED_DECODE: &str = r#"{"library": "transformers", "torch": "2.15.0+cu132", "threads": 2, "new_tokens": 16, "prompt_tokens": 16, "runs": [{"batch": 1, "prefill_s": 0.6736, "total_s": 5.7663, "decode_tokens_per_s": 2.95, "end_to_end_tokens_per_s": 2.77}, {"batch": 8, "prefill_s": 1.5959, "total_s": 14.5615, "decode_tokens_per_s": 9.26, "end_to_end_tokens_per_s": 8.79}], "transformers": "5.23.0"}"#;
/// The same script at 8 new tokens and one repeat on a busy machine: prefill took longer than
/// the whole generation, so the decode rate came out negative (a measurement to reject).
const RECORDED_NOISY_DECODE: &str = r#"{"library": "transformers", "torch": "2.15.0+cu132", "threads": 2, "new_tokens": 8, "prompt_tokens": 16, "runs": [{"batch": 1, "prefill_s": 3.7439, "total_s": 3.4297, "decode_tokens_per_s": -22.28, "end_to_end_tokens_per_s": 2.33}, {"batch": 8, "prefill_s": 8.248, "total_s": 7.1469, "decode_tokens_per_s": -50.86, "end_to_end_tokens_per_s": 8.95}], "transformers": "5.23.0"}"#;

/// A fake interpreter: logs its arguments to `log`, then prints the recorded output of
/// whichever reference script it was asked to run.
fn fake_python(dir: &Path, log: &Path) -> PathBuf {
    let path = dir.join("fake-python");
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> '{}'\ncase \"$1\" in\n  */torch_learner_bench.py) echo 'Loading weights: 100%'; echo '{RECORDED_LEARNER}' ;;\n  */hf_generate_bench.py) echo '{RECORDED_DECODE}' ;;\n  *) echo \"unexpected script $1\" >&2; exit 2 ;;\nesac\n",
        log.display()
    );
    write_executable(&path, &script);
    path
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn quick_json_measures_memrl_and_compares_with_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("argv.log");
    let python = fake_python(dir.path(), &log);
    let r = json_of(&bench(&["--json", "--python", python.to_str().unwrap()]));

    assert_eq!((r["bench"].as_str(), r["quick"].as_bool(), r["threads"].as_u64()), (Some("policy"), Some(true), Some(2)));
    assert_eq!(r["python"].as_str(), python.to_str());
    assert_eq!(r["load_before"].as_array().map(Vec::len), Some(3), "{}", r["load_before"]);
    assert_eq!(r["load_after"].as_array().map(Vec::len), Some(3));

    // memrl's learner: 1 × 64 tokens, real timings, a finite loss near ln(vocab) on random ids.
    let l = &r["learner"]["memrl"];
    assert_eq!((l["config"]["batch"].as_u64(), l["config"]["seq"].as_u64(), l["tokens_per_step"].as_u64()), (Some(1), Some(64), Some(64)));
    assert!(f(&l["tokens_per_s"]) > 0.0 && f(&l["tokens_per_cpu_s"]) > 0.0, "{l}");
    assert!(f(&l["last_loss"]).is_finite() && f(&l["last_loss"]) > 5.0, "{l}");
    assert_eq!(l["trainable_parameters"].as_u64(), Some(134_515_008));
    assert!(r["learner"]["peer_error"].is_null(), "{}", r["learner"]["peer_error"]);
    assert_eq!(f(&r["learner"]["peer"]["tokens_per_s"]), 7.810082997636234);

    // memrl's decode at batch 1 and 8: prompt 16, 16 new tokens.
    let d = r["decode"]["memrl"].as_array().unwrap();
    assert_eq!(d.iter().map(|x| x["batch"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 8]);
    for x in d {
        assert_eq!((x["prompt_tokens"].as_u64(), x["new_tokens"].as_u64()), (Some(16), Some(16)));
        assert!(f(&x["decode_tokens_per_s"]) > 0.0 && f(&x["total_s"]) > f(&x["prefill_s"]), "{x}");
    }
    assert!(r["decode"]["peer_error"].is_null(), "{}", r["decode"]["peer_error"]);

    // The table: memrl next to the peer, ratio = memrl / peer.
    let rows = r["rows"].as_array().unwrap();
    let measures: Vec<&str> = rows.iter().map(|x| x["measure"].as_str().unwrap()).collect();
    assert_eq!(
        measures,
        ["learner tok/s (fwd+bwd+AdamW, 1×64)", "learner tok per CPU-second", "decode tok/s, batch 1 (16 + 16 new)", "decode tok/s, batch 8 (16 + 16 new)"]
    );
    let peers = [7.810082997636234, 9.081025101960854, 2.95, 9.26];
    let memrls = [f(&l["tokens_per_s"]), f(&l["tokens_per_cpu_s"]), f(&d[0]["decode_tokens_per_s"]), f(&d[1]["decode_tokens_per_s"])];
    for ((row, peer), memrl) in rows.iter().zip(peers).zip(memrls) {
        assert_eq!((f(&row["peer"]), f(&row["memrl"])), (peer, memrl), "{row}");
        assert!((f(&row["ratio"]) - memrl / peer).abs() < 1e-9, "{row}");
    }

    // The peers were asked for the same shapes, model and threads; the decode one not to make a venv.
    let argv = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = argv.lines().collect();
    assert_eq!(lines.len(), 2, "{argv}");
    let model = gguf().display().to_string();
    assert!(lines[0].contains("torch_learner_bench.py") && lines[0].contains(&format!("--gguf {model}")), "{argv}");
    assert!(lines[0].contains("--threads 2 --batch 1 --seq 64 --warmup 1 --steps 1"), "{argv}");
    assert!(lines[1].contains("hf_generate_bench.py") && lines[1].contains(&format!("--gguf {model}")), "{argv}");
    assert!(lines[1].contains("--prompt-tokens 16 --new-tokens 16 --batches 1,8 --repeats 2 --no-venv"), "{argv}");
}

#[test]
fn a_peer_that_cannot_run_gives_its_reason_and_no_ratio() {
    // No interpreter at all; text output.
    let out = bench(&["--only", "decode", "--python", "/nonexistent/python3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("peer: unavailable (/nonexistent/python3)"), "{text}");
    assert!(text.contains("peer decode unavailable, no ratio: cannot run the Python interpreter `/nonexistent/python3`"), "{text}");
    assert!(text.contains("may be shared") && text.contains("load average"), "{text}");
    let row = text.lines().find(|l| l.starts_with("decode tok/s, batch 8")).unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[cells.len() - 2..], ["–", "–"], "peer and ratio columns are empty: {row:?}");
    assert!(cells[cells.len() - 3].parse::<f64>().unwrap() > 0.0, "memrl's figure is there: {row:?}");
    assert!(!text.contains("learner"), "--only decode: {text}");

    // An interpreter without torch; JSON output.
    let dir = tempfile::tempdir().unwrap();
    let python = dir.path().join("python-without-torch");
    write_executable(&python, "#!/bin/sh\necho 'Traceback (most recent call last):' >&2\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n");
    let r = json_of(&bench(&["--only", "decode", "--json", "--python", python.to_str().unwrap()]));
    assert!(r["learner"].is_null());
    let why = r["decode"]["peer_error"].as_str().unwrap();
    assert!(why.contains("hf_generate_bench.py") && why.contains("No module named 'torch'"), "{why}");
    assert!(r["decode"]["peer"].is_null());
    for row in r["rows"].as_array().unwrap() {
        assert!(row["peer"].is_null() && row["ratio"].is_null() && f(&row["memrl"]) > 0.0, "{row}");
    }
}

#[test]
fn a_missing_model_says_how_to_fetch_it() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_memrl")).args(["bench", "policy", "--quick", "--no-peer", "--model", "/nonexistent/model.gguf"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("/nonexistent/model.gguf") && err.contains("scripts/fetch-model.sh"), "{err}");
}

#[test]
fn peer_outputs_parse_and_the_real_peer_runs() {
    // Outputs recorded from the real scripts parse, and a noisy measurement is refused.
    let l = parse_learner(RECORDED_LEARNER, 1, 64, 2).unwrap();
    assert_eq!((l.torch.as_str(), l.transformers.as_str()), ("2.15.0+cu132", "5.23.0"));
    let d = parse_decode(RECORDED_DECODE, &[1, 8], 16, 16, 2).unwrap();
    assert_eq!(d.runs.iter().map(|r| r.decode_tokens_per_s).collect::<Vec<_>>(), vec![2.95, 9.26]);
    let e = parse_decode(RECORDED_NOISY_DECODE, &[1, 8], 16, 8, 2).unwrap_err().to_string();
    assert!(e.contains("-22.28") && e.contains("batch 1"), "{e}");

    // The real scripts through the binary, with the peer interpreter CI provides.
    let python = std::env::var("MEMRL_PEER_PYTHON").ok().filter(|p| !p.is_empty());
    let Some(python) = python else {
        assert_ne!(
            std::env::var("MEMRL_CHECK_TRANSFORMERS").as_deref(),
            Ok("1"),
            "MEMRL_CHECK_TRANSFORMERS=1 but MEMRL_PEER_PYTHON is not set: point it at a Python with the newest torch + transformers (scripts/setup-python-venv.sh --peer makes one)"
        );
        eprintln!("note: the live run of the real peer scripts needs MEMRL_PEER_PYTHON (.ci/run sets it); only recorded outputs were checked");
        return;
    };
    let r = json_of(&bench(&["--json", "--python", &python]));
    for part in ["learner", "decode"] {
        assert!(r[part]["peer_error"].is_null(), "{part}: {}", r[part]["peer_error"]);
    }
    assert_eq!(r["learner"]["peer"]["library"].as_str(), Some("torch"));
    assert_eq!(r["decode"]["peer"]["library"].as_str(), Some("transformers"));
    // The peer is the newest torch the project pins for it, not the tch backend's torch 2.11.
    let pins = std::fs::read_to_string(repo_root().join("scripts/requirements-peer.txt")).unwrap();
    let pin = |name: &str| pins.lines().find_map(|l| l.strip_prefix(&format!("{name}=="))).unwrap_or_else(|| panic!("no {name} pin")).to_string();
    for (part, library) in [("learner", "torch"), ("decode", "torch"), ("learner", "transformers"), ("decode", "transformers")] {
        let version = r[part]["peer"][library].as_str().unwrap_or_default();
        let release = version.split('+').next().unwrap_or_default();
        assert_eq!(release, pin(library), "{part} peer's {library} is {version}: not the version scripts/requirements-peer.txt pins");
    }
    for row in r["rows"].as_array().unwrap() {
        assert!(f(&row["ratio"]) > 0.0 && f(&row["peer"]) > 0.0, "{row}");
    }
}
