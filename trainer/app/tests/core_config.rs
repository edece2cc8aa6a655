//! Configuration: defaults, files, `--set` overrides, and error messages that name the key.

use memrl_rl::advantage::AdvantageEstimator;
use memrl_rl::loss::{KlEstimator, LossAggregation};
use memrl_rl::schedule::ScheduleKind;
use memrl_rl::segments::SegmentationMode;
use memrl_trainer::config::{self, Config, ConfigError, Device, defaults_toml, from_toml_str};

fn set(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn defaults_dump_parses_back_to_the_defaults() {
    let text = defaults_toml();
    let mut expected = Config::default();
    expected.run.dir = "runs/quickstart".into();
    let parsed = from_toml_str(&text, "defaults", &[]).unwrap();
    // run.dir is resolved on load; everything else is unchanged.
    assert_eq!(parsed, expected);
    for section in ["[run]", "[env]", "[policy]", "[policy.lora]", "[rollout]", "[algorithm]", "[trainer]", "[sft]", "[eval]"] {
        assert!(text.contains(section), "{section} missing from\n{text}");
    }
}

#[test]
fn a_file_with_overrides_resolves_and_round_trips() {
    let text = r#"
        [run]
        name = "facts-small"
        seed = 3

        [env]
        name = "facts"
        [env.options]
        n_entities = 12

        [algorithm]
        advantage = "rloo"
        kl_estimator = "low_var_kl"
        loss_agg = "trajectory_mean"

        [policy]
        device = "cuda:1"
    "#;
    let c = from_toml_str(
        text,
        "test.toml",
        &set(&[
            "trainer.lr=2e-6",
            "run.seed=7",
            "trainer.betas=[0.9, 0.95]",
            "env.options.n_questions=4",
            "algorithm.segmentation=per_turn",
            "run.name=renamed",
            "trainer.schedule=cosine",
            "algorithm.kl_coef=0",
        ]),
    )
    .unwrap();
    assert_eq!(c.trainer.lr, 2e-6);
    assert_eq!(c.run.seed, 7);
    assert_eq!(c.run.name, "renamed");
    assert_eq!(c.run.dir, "runs/renamed");
    assert_eq!(c.trainer.betas, [0.9, 0.95]);
    assert_eq!(c.trainer.schedule, ScheduleKind::Cosine);
    assert_eq!(c.algorithm.advantage, AdvantageEstimator::Rloo);
    assert_eq!(c.algorithm.kl_estimator, KlEstimator::K3);
    assert_eq!(c.algorithm.loss_agg, LossAggregation::TrajectoryMean);
    assert_eq!(c.algorithm.segmentation, SegmentationMode::PerTurn);
    assert_eq!(c.policy.device, Device::Cuda(1));
    assert_eq!(c.env.options["n_entities"].as_integer(), Some(12));
    assert_eq!(c.env.options["n_questions"].as_integer(), Some(4));
    // The resolved config written to the run dir reads back identically.
    assert_eq!(from_toml_str(&c.to_toml_string(), "config.toml", &[]).unwrap(), c);
}

#[test]
fn string_keys_take_the_raw_text() {
    // `123` and `true` would parse as TOML literals, but run.name is a string.
    let c = from_toml_str("", "t", &set(&["run.name=123", "sft.source=true"])).unwrap();
    assert_eq!((c.run.name.as_str(), c.sft.source.as_str()), ("123", "true"));
}

#[test]
fn type_errors_name_the_key_and_the_expected_type() {
    let err = from_toml_str("[trainer]\nlr = \"fast\"\n", "bad.toml", &[]).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(&err, ConfigError::Field { key, .. } if key == "trainer.lr"), "{msg}");
    assert!(msg.contains("bad.toml") && msg.contains("trainer.lr") && msg.contains("f64"), "{msg}");

    let err = from_toml_str("[rollout]\ngroup_size = -1\n", "bad.toml", &[]).unwrap_err();
    assert!(err.to_string().contains("rollout.group_size"), "{err}");

    let err = from_toml_str("[policy]\ndevice = \"gpu\"\n", "bad.toml", &[]).unwrap_err();
    assert!(err.to_string().contains("policy.device") && err.to_string().contains("cuda:N"), "{err}");

    let err = from_toml_str("[algorithm]\nadvantage = \"ppo\"\n", "bad.toml", &[]).unwrap_err();
    assert!(err.to_string().contains("algorithm.advantage") && err.to_string().contains("grpo"), "{err}");
}

#[test]
fn unknown_keys_are_rejected_with_their_path() {
    let err = from_toml_str("[trainer]\nlearning_rate = 1e-6\n", "bad.toml", &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("trainer") && msg.contains("learning_rate"), "{msg}");

    let err = from_toml_str("[trainers]\nlr = 1e-6\n", "bad.toml", &[]).unwrap_err();
    assert!(err.to_string().contains("trainers"), "{err}");

    let err = from_toml_str("", "t", &set(&["trainer.learning_rate=1"])).unwrap_err();
    assert!(matches!(&err, ConfigError::UnknownKey { key, .. } if key == "trainer.learning_rate"), "{err}");
    assert!(err.to_string().contains("lr"), "the known keys are listed: {err}");
    let err = from_toml_str("", "t", &set(&["policy.lora.rank.x=1"])).unwrap_err();
    assert!(matches!(err, ConfigError::BadOverride { .. }), "{err}");
    let err = from_toml_str("", "t", &set(&["nonsense"])).unwrap_err();
    assert!(matches!(err, ConfigError::BadOverride { .. }), "{err}");
}

#[test]
fn override_type_errors_name_the_key() {
    let err = from_toml_str("", "t", &set(&["rollout.group_size=many"])).unwrap_err();
    assert!(err.to_string().contains("rollout.group_size"), "{err}");
}

#[test]
fn out_of_range_values_are_rejected_with_the_key() {
    for (arg, key) in [
        ("algorithm.clip_low=1.5", "algorithm.clip_low"),
        ("algorithm.dual_clip=0.5", "algorithm.dual_clip"),
        ("rollout.top_p=0", "rollout.top_p"),
        ("rollout.group_size=0", "rollout.group_size"),
        ("trainer.lr=0", "trainer.lr"),
        ("algorithm.lam=2", "algorithm.lam"),
        ("trainer.betas=[0.9, 1.0]", "trainer.betas"),
        ("run.name=a/b", "run.name"),
    ] {
        let err = from_toml_str("", "t", &set(&[arg])).unwrap_err();
        assert!(matches!(&err, ConfigError::Invalid { key: k, .. } if *k == key), "{arg}: {err}");
    }
}

#[test]
fn syntax_errors_name_the_file() {
    let err = from_toml_str("[run\nname = 1", "broken.toml", &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }));
    assert!(err.to_string().contains("broken.toml"), "{err}");
    let err = config::load(Some(std::path::Path::new("/nonexistent/x.toml")), &[]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.toml"), "{err}");
}

#[test]
fn derived_settings() {
    let c = from_toml_str("[algorithm]\ndual_clip = 0\ntis_cap = 0\n", "t", &[]).unwrap();
    let loss = c.algorithm.loss_config(c.rollout.max_new_tokens);
    assert_eq!((loss.dual_clip, loss.tis_cap), (None, None));
    let d = Config::default().algorithm.loss_config(256);
    assert_eq!((d.dual_clip, d.tis_cap), (Some(3.0), Some(2.0)));
    let s = c.trainer.schedule(100);
    assert_eq!((s.base_lr, s.total_steps), (1e-6, 100));
    assert_eq!(
        Config { run: config::RunConfig { dir: "out/x".into(), ..Default::default() }, ..Default::default() }.run_dir(),
        std::path::PathBuf::from("out/x")
    );
}

#[test]
fn lora_settings_that_cannot_run_are_refused_naming_the_key() {
    let on = |extra: &[&str]| {
        let mut args = vec!["policy.lora.enabled=true"];
        args.extend_from_slice(extra);
        from_toml_str("", "t", &set(&args))
    };
    let c = on(&["policy.lora.rank=4", "policy.lora.target_modules=[\"q_proj\", \"down_proj\"]"]).unwrap();
    let lora = c.lora().expect("enabled");
    assert_eq!((lora.rank, lora.seed, lora.target_modules.len()), (4, c.run.seed, 2));
    assert!(from_toml_str("", "t", &[]).unwrap().lora().is_none(), "disabled by default");
    for (extra, key) in [
        ("policy.lora.rank=0", "policy.lora.rank"),
        ("policy.lora.alpha=0", "policy.lora.alpha"),
        ("policy.lora.alpha=-2", "policy.lora.alpha"),
        ("policy.lora.dropout=1", "policy.lora.dropout"),
        ("policy.lora.target_modules=[]", "policy.lora.target_modules"),
        ("policy.lora.target_modules=[\"qkv_proj\"]", "policy.lora.target_modules"),
        ("policy.lora.target_modules=[\"q_proj\", \"q_proj\"]", "policy.lora.target_modules"),
        // PPO's value head is not an adapter: it would never train.
        ("algorithm.advantage=\"gae\"", "policy.lora.enabled"),
    ] {
        let err = on(&[extra]).unwrap_err();
        assert!(matches!(&err, ConfigError::Invalid { key: k, .. } if *k == key), "{extra}: {err}");
    }
    // Disabled, the adapter knobs are not checked (a config may keep them for later).
    assert!(from_toml_str("", "t", &set(&["policy.lora.rank=0"])).is_ok());
}
