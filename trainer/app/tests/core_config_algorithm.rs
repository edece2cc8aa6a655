//! Algorithm combinations that cannot train are refused when the config is validated, naming
//! the key; the algorithm keys' derived loss settings.

use memrl_rl::loss::{LossAggregation, SegmentWeighting};
use memrl_trainer::config::{ConfigError, check_segmentation_fits_env, from_toml_str};

fn refused(overrides: &[&str]) -> ConfigError {
    let args: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    from_toml_str("", "t", &args).expect_err(&format!("{overrides:?} must be refused"))
}

fn assert_names(err: &ConfigError, key: &str, words: &str) {
    assert!(matches!(err, ConfigError::Invalid { key: k, .. } if *k == key), "expected `{key}`: {err}");
    assert!(err.to_string().contains(words), "{err}");
}

#[test]
fn combinations_that_cannot_train_name_their_key() {
    assert_names(&refused(&["algorithm.adv_eps=0"]), "algorithm.adv_eps", "> 0");
    // The critic's keys are read only by gae; out of range anywhere.
    assert_names(&refused(&["algorithm.gamma=0.99"]), "algorithm.gamma", "gae");
    assert_names(&refused(&["algorithm.lam=0.95"]), "algorithm.lam", "gae");
    assert_names(&refused(&["algorithm.vf_coef=1"]), "algorithm.vf_coef", "gae");
    assert_names(&refused(&["algorithm.value_clip=0.1"]), "algorithm.value_clip", "gae");
    assert_names(&refused(&["algorithm.critic=separate"]), "algorithm.critic", "gae");
    assert_names(&refused(&["algorithm.whiten_advantages=false"]), "algorithm.whiten_advantages", "gae");
    let gae = |more: &[&str]| refused(&[&["algorithm.advantage=gae"], more].concat());
    assert_names(&gae(&["algorithm.gamma=1.5"]), "algorithm.gamma", "<= 1");
    assert_names(&gae(&["algorithm.lam=-0.1"]), "algorithm.lam", "0 <=");
    assert_names(&gae(&["algorithm.value_clip=-0.1"]), "algorithm.value_clip", ">= 0");
    assert_names(&gae(&["algorithm.vf_coef=-1"]), "algorithm.vf_coef", ">= 0");
    assert_names(&gae(&["algorithm.vf_coef=0"]), "algorithm.vf_coef", "never learns");
    assert_names(&gae(&["algorithm.critic=separate"]), "algorithm.critic", "not available yet");
    for p in ["0", "-0.5", "1.5"] {
        assert_names(&refused(&[&format!("algorithm.skip_tokens_above_prob={p}")]), "algorithm.skip_tokens_above_prob", "(0, 1]");
    }
    assert_names(&gae(&["algorithm.skip_tokens_above_prob=0.9"]), "algorithm.skip_tokens_above_prob", "critic");
    assert_names(&refused(&["rollout.top_p=0.9"]), "rollout.top_p", "off-policy");
    assert_names(&refused(&["rollout.top_k=40"]), "rollout.top_k", "off-policy");
    assert_names(&refused(&["rollout.temperature=0"]), "rollout.temperature", "greedy");
    for (agg, weighting) in
        [("token_mean", "trajectory_equal"), ("token_mean", "token_proportional"), ("trajectory_mean", "trajectory_equal"), ("dr_grpo", "token_proportional")]
    {
        let err = refused(&[&format!("algorithm.loss_agg={agg}"), &format!("algorithm.segment_weighting={weighting}")]);
        assert_names(&err, "algorithm.segment_weighting", "segment weighting");
    }
}

#[test]
fn combinations_that_can_train_load() {
    for args in [
        vec!["rollout.temperature=0.7"],
        vec!["algorithm.advantage=dr_grpo", "algorithm.loss_agg=dr_grpo"],
        vec!["algorithm.loss_agg=seq_mean_token_sum_norm"],
        vec!["algorithm.loss_agg=seq_mean_token_mean", "algorithm.segment_weighting=trajectory_equal"],
        vec!["algorithm.loss_agg=seq_mean_token_mean", "algorithm.segment_weighting=token_proportional"],
        vec!["algorithm.loss_agg=dr_grpo", "algorithm.segment_weighting=trajectory_equal"],
        vec!["trainer.mini_batches=4", "trainer.epochs_per_step=2"],
        vec!["algorithm.skip_tokens_above_prob=0.9"],
        vec!["algorithm.advantage=gae"],
        vec!["algorithm.advantage=gae", "algorithm.gamma=0.99", "algorithm.lam=0.95", "algorithm.vf_coef=1", "algorithm.value_clip=0"],
        vec!["algorithm.advantage=gae", "algorithm.whiten_advantages=false", "trainer.mini_batches=2", "trainer.epochs_per_step=2"],
    ] {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        from_toml_str("", "t", &args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
}

#[test]
fn dr_grpo_divides_by_the_rollout_token_budget() {
    let c = from_toml_str("[rollout]\nmax_new_tokens = 96\n[algorithm]\nloss_agg = \"dr_grpo\"\n", "t", &[]).unwrap();
    let loss = c.algorithm.loss_config(c.rollout.max_new_tokens);
    assert_eq!((loss.aggregation, loss.sum_norm_tokens), (LossAggregation::DrGrpo, 96.0));
    assert_eq!(loss.segment_weighting, SegmentWeighting::Unweighted, "the default keeps today's weights");
}

#[test]
fn prefix_only_is_refused_on_environments_that_edit_their_context() {
    // `facts` rebuilds its context every chunk; `multiobjective`'s oracle prunes.
    for env in ["facts", "multiobjective"] {
        let c = from_toml_str(&format!("[env]\nname = \"{env}\"\n[algorithm]\nsegmentation = \"prefix_only\"\n"), "t", &[]).unwrap();
        let err = check_segmentation_fits_env(&c).expect_err(env);
        assert_names(&err, "algorithm.segmentation", "dcpo");
        let dcpo = from_toml_str(&format!("[env]\nname = \"{env}\"\n"), "t", &[]).unwrap();
        check_segmentation_fits_env(&dcpo).unwrap();
    }
}
