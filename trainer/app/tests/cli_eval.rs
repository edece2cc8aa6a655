//! `memrl eval`: scripted policies (no model), a tiny random checkpoint as the agent, the
//! reader and the judge, the output layout, and bad checkpoints. Everything runs in seconds.

use std::path::{Path, PathBuf};

use clap::Parser;
use memrl_datasets::locomo::LocomoDataset;
use memrl_datasets::scoring::locomo::{aggregate, score_qa};
use memrl_envs::env::{Next, ScriptedKind, Split, TaskId};
use memrl_envs::registry::build_env;
use memrl_envs::tokens::WhitespaceCounter;
use memrl_policies::BurnBackend;
use memrl_policies::train::bpe::{BpeTrainingConfig, train_bpe_tokenizer};
use memrl_policies::train::checkpoint::{CheckpointOptions, TokenizerFiles, save_checkpoint};
use memrl_policies::train::tiny::{TinyPreset, init_tiny};
use memrl_trainer::cli::eval::{EvalArgs, format_report, options, write_report};
use memrl_trainer::eval::bench::BenchKind;
use memrl_trainer::eval::output::default_output;
use memrl_trainer::eval::policy::EvalPolicy;
use memrl_trainer::eval::{EvalOptions, JudgeOptions, evaluate};
use rand::SeedableRng;
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn locomo_data() -> PathBuf {
    repo_root().join("../shared/data/locomo/locomo10.json")
}

/// The `memrl eval` command line, parsed and run in-process (the binary's path in the shared
/// target directory can be replaced by another worktree's build while tests run). Returns the
/// printed summary, or the error as `main` prints it.
fn memrl_eval(args: &[&str], dir: &Path) -> Result<String, String> {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: EvalArgs,
    }
    let cli = Cli::try_parse_from(std::iter::once("memrl-eval").chain(args.iter().copied())).map_err(|e| e.to_string())?;
    let mut a = cli.args;
    // Relative paths resolve against `dir`, as they would with the binary run there.
    let abs = |p: &mut Option<PathBuf>| {
        if let Some(x) = p.as_mut().filter(|x| x.is_relative()) {
            *x = dir.join(&*x);
        }
    };
    abs(&mut a.checkpoint);
    abs(&mut a.out);
    let opts = options(&a).map_err(|e| format!("error: {e:#}"))?;
    let report = evaluate(&opts).map_err(|e| format!("error: {e:#}"))?;
    let path = a.out.clone().unwrap_or_else(|| dir.join(default_output(a.bench, a.policy, a.checkpoint.as_deref())));
    let written = write_report(&report, &path).map_err(|e| format!("error: {e:#}"))?;
    let mut text = format_report(&report);
    for p in written {
        text.push_str(&format!("written: {}\n", p.display()));
    }
    Ok(text)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// A tiny random-init Llama with a BPE tokenizer trained on scripted episodes of `facts` and
/// `locomo`, saved as `<root>/runs/tiny/checkpoints/step-3`.
fn tiny_checkpoint(root: &Path) -> PathBuf {
    let mut corpus = Vec::new();
    for (env_name, knobs) in
        [("facts", Value::Null), ("locomo", serde_json::json!({"max_sessions": 2, "questions_per_episode": 2, "data_path": locomo_data()}))]
    {
        let mut env = build_env(env_name, knobs, std::sync::Arc::new(WhitespaceCounter)).unwrap();
        let split = if env_name == "locomo" { Split::Validation } else { Split::Train };
        let mut turn = env.reset(TaskId { split, index: 0 }, 1).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for _ in 0..64 {
            corpus.extend(turn.messages.iter().map(|m| m.content.clone()));
            corpus.push(turn.tools_text.to_string());
            let completion = env.scripted(ScriptedKind::Oracle, &mut rng).unwrap();
            corpus.push(completion.clone());
            match env.step(&completion).unwrap().next {
                Next::Continue(t) => turn = t,
                Next::Done(_) => break,
            }
        }
    }
    let tokenizer =
        train_bpe_tokenizer(corpus.iter().map(String::as_str), &BpeTrainingConfig { vocab_size: 700, min_frequency: 2, ..BpeTrainingConfig::default() })
            .unwrap();
    let model = init_tiny(BurnBackend::flex(), TinyPreset::L2D64, tokenizer.vocab_size(), 7).unwrap();
    let dir = root.join("runs/tiny/checkpoints/step-3");
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    save_checkpoint(&dir, &model, &TokenizerFiles::from_trained(&tokenizer).unwrap(), None, &CheckpointOptions::default()).unwrap();
    dir
}

#[test]
fn oracle_scores_one_on_facts_and_no_memory_does_not() {
    let mut opts = EvalOptions::new(BenchKind::Facts, EvalPolicy::Oracle);
    opts.limit = Some(12);
    let oracle = evaluate(&opts).unwrap();
    let table = oracle.synthetic.as_ref().expect("synthetic table");
    assert_eq!((oracle.episodes, table.episodes), (12, 12));
    assert!(oracle.questions >= 12);
    assert_eq!((table.reward, table.task_score, table.question_score), (1.0, 1.0, Some(1.0)));
    assert!(oracle.rows.iter().all(|r| r.score == 1.0 && r.prediction.is_some()));
    assert!(oracle.efficiency.tokens_read_per_question > 0.0 && oracle.efficiency.memory_peak_entries > 0.0);
    assert!(oracle.protocol.contains("no model") && oracle.examples.is_empty());
    assert_eq!(oracle.efficiency.format_errors_per_episode, 0.0);
    opts.policy = EvalPolicy::NoMemory;
    let none = evaluate(&opts).unwrap();
    assert!(none.synthetic.unwrap().task_score < 0.2);
}

#[test]
fn locomo_oracle_with_limit_prints_the_table_and_writes_json_that_memrl_score_agrees_with() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("res/locomo-oracle.json");
    let data = format!("data_path={}", locomo_data().display());
    let stdout = memrl_eval(
        &[
            "--bench",
            "locomo",
            "--policy",
            "oracle",
            "--limit",
            "40",
            "--set",
            "conversations=[\"conv-41\"]",
            "--set",
            &data,
            "--out",
            out.to_str().unwrap(),
            "--no-progress",
        ],
        dir.path(),
    )
    .unwrap();
    for needle in [
        "single-hop (4)",
        "multi-hop (1)",
        "temporal (2)",
        "adversarial (5)",
        "overall (all categories)",
        "overall w/o adversarial",
        "questions: 40 (--limit 40)",
        "BLEU-1",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }
    let report = read_json(&out);
    assert_eq!(report["questions"], 40);
    assert_eq!(report["rows"].as_array().unwrap().len(), 40);
    let overall = report["locomo"]["overall"]["f1"].as_f64().unwrap();
    assert!(overall > 0.97, "oracle overall {overall}");
    let no_adv = &report["locomo"]["overall_without_adversarial"];
    assert!(no_adv["questions"].as_u64().unwrap() < 40, "the adversarial category is included and split out");
    let row = &report["rows"][0];
    assert_eq!(row["sample_id"], "conv-41");
    assert!(row["qa_index"].is_u64() && row["gold"].is_string());

    // The predictions file scores the same under the official scorer `memrl score` uses.
    let data = LocomoDataset::load(&locomo_data()).unwrap();
    let text = std::fs::read_to_string(dir.path().join("res/locomo-oracle.predictions.jsonl")).unwrap();
    let scores: Vec<_> = text
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let sample = data.samples.iter().find(|s| s.sample_id == v["sample_id"].as_str().unwrap()).unwrap();
            let qa = &sample.qa[v["qa_index"].as_u64().unwrap() as usize];
            (qa.category, score_qa(qa, v["prediction"].as_str().unwrap()))
        })
        .collect();
    let rescored = aggregate(scores);
    assert_eq!(rescored.count, 40);
    assert!((rescored.overall.unwrap() - overall).abs() < 1e-12);
}

#[test]
fn longmemeval_scripted_gives_the_per_type_table() {
    let fixture = repo_root().join("envs/tests/fixtures/longmemeval_tiny.json");
    let mut opts = EvalOptions::new(BenchKind::Longmemeval, EvalPolicy::Oracle);
    opts.set = vec![format!("data_path={}", fixture.display()), "train_fraction=0".into(), "validation_fraction=0".into()];
    let report = evaluate(&opts).unwrap();
    let t = report.longmemeval.as_ref().unwrap();
    assert_eq!(t.labels_from, "proxy");
    assert_eq!(t.overall.questions, report.questions);
    assert!(report.questions > 0 && t.overall.accuracy.unwrap() > 0.9, "{t:?}");
    assert!(!t.types.is_empty());
    opts.limit = Some(1);
    assert_eq!(evaluate(&opts).unwrap().questions, 1);
}

#[test]
fn tiny_model_as_reader_judge_and_agent() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(dir.path());

    // Reader baseline + judge on LoCoMo, through the binary: default output in the run dir.
    let ckpt_arg = ckpt.to_str().unwrap();
    let data = format!("data_path={}", locomo_data().display());
    let stdout = memrl_eval(
        &[
            "--checkpoint",
            ckpt_arg,
            "--bench",
            "locomo",
            "--policy",
            "bm25-rag",
            "--limit",
            "3",
            "--set",
            "conversations=[\"conv-41\"]",
            "--set",
            &data,
            "--judge-model",
            ckpt_arg,
            "--judge-max-tokens",
            "8",
            "--answer-tokens",
            "6",
            "--top-k",
            "3",
            "--no-progress",
        ],
        dir.path(),
    )
    .unwrap();
    let report = read_json(&dir.path().join("runs/tiny/eval/locomo-step-3-bm25-rag.json"));
    assert!(dir.path().join("runs/tiny/eval/locomo-step-3-bm25-rag.predictions.jsonl").is_file());
    assert_eq!(report["questions"], 3);
    assert_eq!(report["step"], 3);
    assert!(report["efficiency"]["token_source"].as_str().unwrap().starts_with("exact"));
    assert!(report["efficiency"]["answer_tokens_read_per_question"].as_f64().unwrap() > 0.0);
    assert_eq!(report["efficiency"]["reader_context"]["items_shown"].as_f64().unwrap(), 3.0);
    let judged: Vec<&Value> = report["rows"].as_array().unwrap().iter().filter(|r| r["category_id"] != 5).collect();
    assert!(judged.iter().all(|r| r["judge"]["correct"].is_boolean()), "every category 1-4 row is judged");
    assert_eq!(report["locomo"]["overall_without_adversarial"]["judged"].as_u64().unwrap() as usize, judged.len());
    assert!(stdout.contains("     J") && stdout.contains("judge:"), "{stdout}");

    // The tiny model as the agent on facts: exact tokens split by phase.
    let mut opts = EvalOptions::new(BenchKind::Facts, EvalPolicy::Model);
    opts.checkpoint = Some(ckpt.clone());
    opts.limit = Some(2);
    opts.max_new_tokens = 12;
    opts.set = vec!["entities=1".into(), "questions=1".into()];
    let agent = evaluate(&opts).unwrap();
    assert_eq!(agent.episodes, 2);
    let e = &agent.efficiency;
    assert!(e.memory_tokens_read_per_question > 0.0 && e.answer_tokens_read_per_question > 0.0, "{e:?}");
    assert!(e.generated_tokens_per_question > 0.0 && e.generate_seconds > 0.0);
    // A random model writes no valid tool call: every turn is a format error, and shows up in the examples.
    assert!(e.format_errors_per_episode > 0.0 && e.memory_ops_per_episode == 0.0, "{e:?}");
    assert!(["memory", "answer"].iter().all(|p| agent.examples.iter().any(|x| x.phase == *p)), "{:?}", agent.examples);
    assert_eq!(agent.settings.max_context, Some(4096));

    // A baseline that needs a reader refuses to run without one; the judge path is checked.
    let mut no_model = EvalOptions::new(BenchKind::Locomo, EvalPolicy::FullContext);
    no_model.judge = Some(JudgeOptions { model: dir.path().join("missing.gguf"), max_new_tokens: None });
    let err = evaluate(&no_model).unwrap_err().to_string();
    assert!(err.contains("--checkpoint"), "{err}");
}

#[test]
fn malformed_checkpoints_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad_dir = dir.path().join("ck");
    std::fs::create_dir_all(&bad_dir).unwrap();
    std::fs::write(bad_dir.join("config.json"), "{not json").unwrap();
    std::fs::write(bad_dir.join("model.safetensors"), b"").unwrap();
    std::fs::write(bad_dir.join("tokenizer.json"), "{}").unwrap();
    let bad_gguf = dir.path().join("broken.gguf");
    std::fs::write(&bad_gguf, b"GGUF but not really").unwrap();
    for (path, needle) in [(bad_dir.clone(), "config.json"), (bad_gguf.clone(), "broken.gguf"), (dir.path().join("nope"), "nope")] {
        let err = memrl_eval(&["--checkpoint", path.to_str().unwrap(), "--bench", "facts", "--limit", "1", "--no-progress"], dir.path()).unwrap_err();
        assert!(err.starts_with("error: ") && err.contains(needle), "{needle}: {err}");
    }
    // A bad knob and a bad --set are errors too, naming the key.
    let err = memrl_eval(&["--bench", "facts", "--policy", "oracle", "--set", "capacityy=3", "--no-progress"], dir.path()).unwrap_err();
    assert!(err.contains("capacityy"), "{err}");
    let err = memrl_eval(&["--bench", "facts", "--policy", "oracle", "--set", "capacity"], dir.path()).unwrap_err();
    assert!(err.contains("KEY=VALUE"), "{err}");
}

#[test]
fn config_file_supplies_the_judge_and_base_knobs() {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: EvalArgs,
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eval.toml");
    std::fs::write(
        &config,
        "[run]\nname = \"ignored\"\n[judge]\nmodel = \"judge.gguf\"\nmax_new_tokens = 5\n[env]\nname = \"facts\"\n[env.options]\nentities = 2\ncapacity = 3\n",
    )
    .unwrap();
    let parse = |extra: &[&str]| {
        let mut argv = vec!["memrl-eval", "--bench", "facts", "--config", config.to_str().unwrap()];
        argv.extend_from_slice(extra);
        options(&Cli::try_parse_from(argv).unwrap().args)
    };
    let opts = parse(&["--set", "capacity=4"]).unwrap();
    assert_eq!(opts.judge, Some(JudgeOptions { model: PathBuf::from("judge.gguf"), max_new_tokens: Some(5) }));
    assert_eq!(opts.base_knobs["entities"], 2);
    assert_eq!(opts.set, vec!["capacity=4".to_string()]);
    // --judge-model and --judge-max-tokens win over the file.
    let opts = parse(&["--judge-model", "other.gguf", "--judge-max-tokens", "7"]).unwrap();
    assert_eq!(opts.judge, Some(JudgeOptions { model: PathBuf::from("other.gguf"), max_new_tokens: Some(7) }));
    // The knobs reach the environment: --set overrides the file.
    let mut run = parse(&["--policy", "oracle", "--limit", "2", "--set", "capacity=4"]).unwrap();
    run.judge = None;
    let report = evaluate(&run).unwrap();
    assert_eq!((report.knobs["entities"].as_u64(), report.knobs["capacity"].as_u64()), (Some(2), Some(4)));
    // An [env] for another benchmark, or an unknown [judge] key, is refused with the file named.
    std::fs::write(&config, "[env]\nname = \"locomo\"\n").unwrap();
    let err = format!("{:#}", parse(&[]).unwrap_err());
    assert!(err.contains("eval.toml") && err.contains("locomo"), "{err}");
    std::fs::write(&config, "[judge]\nmodle = \"x\"\n").unwrap();
    let err = format!("{:#}", parse(&[]).unwrap_err());
    assert!(err.contains("eval.toml") && err.contains("modle"), "{err}");
}
