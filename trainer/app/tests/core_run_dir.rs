//! Run directory: refuse / resume / overwrite, atomic files, checkpoint directories.

use std::fs;
use std::path::Path;

use memrl_trainer::owned_dir::{OWNED_MARKER, OwnedDirError};
use memrl_trainer::run_dir::{
    ExistingRun, RunDir, RunDirError, checkpoint_dir_name, complete_checkpoints, complete_sft_checkpoints, latest_complete_checkpoint, prune_checkpoints,
    recover_checkpoints, remove_sft_checkpoints, sft_checkpoint_dir_name, write_checkpoint, write_file_atomic,
};

#[test]
fn existing_directories_need_resume_or_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("runs/demo");
    assert!(matches!(RunDir::open(&root, ExistingRun::Resume), Err(RunDirError::NothingToResume(_))));
    let run = RunDir::open(&root, ExistingRun::Refuse).unwrap();
    for d in [run.rollouts_dir(), run.checkpoints_dir(), run.plots_dir(), run.eval_dir()] {
        assert!(d.is_dir(), "{}", d.display());
    }
    run.write_config("[run]\nname = \"demo\"\n").unwrap();
    fs::write(run.metrics_path(), "{\"step\":0}\n").unwrap();
    assert!(matches!(RunDir::open(&root, ExistingRun::Refuse), Err(RunDirError::AlreadyExists(_))));
    drop(run);
    let resumed = RunDir::open(&root, ExistingRun::Resume).unwrap();
    assert!(resumed.metrics_path().is_file(), "resume keeps the files");
    drop(resumed);
    let fresh = RunDir::open(&root, ExistingRun::Overwrite).unwrap();
    assert!(!fresh.metrics_path().exists() && !fresh.config_path().exists(), "overwrite starts afresh");
    // The old run was moved aside, not deleted.
    let aside = tmp.path().join("runs/demo.old-1");
    assert_eq!(fresh.previous(), Some(aside.as_path()));
    assert_eq!(fs::read_to_string(aside.join("metrics.jsonl")).unwrap(), "{\"step\":0}\n");
    assert_eq!(fresh.rollout_path(3), root.join("rollouts/step-3.parquet"));
    assert_eq!(fresh.eval_path("locomo", 20), root.join("eval/locomo-step-20.json"));

    // A non-empty directory without config.toml is not deleted.
    let other = tmp.path().join("precious");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("thesis.tex"), "keep me").unwrap();
    assert!(matches!(RunDir::open(&other, ExistingRun::Overwrite), Err(RunDirError::Owned(OwnedDirError::NotOwned(_)))));
    assert!(other.join("thesis.tex").is_file());
    // Nor is one that merely looks like a run (a copy of an experiment folder with its config):
    // only a directory memrl created carries the marker.
    let copy = tmp.path().join("experiment-copy");
    fs::create_dir_all(copy.join("checkpoints")).unwrap();
    fs::write(copy.join("config.toml"), "[run]\n").unwrap();
    fs::write(copy.join("README.md"), "results").unwrap();
    assert!(matches!(RunDir::open(&copy, ExistingRun::Overwrite), Err(RunDirError::Owned(OwnedDirError::NotOwned(_)))));
    assert!(copy.join("README.md").is_file());
    // An empty one may be reused.
    let empty = tmp.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    RunDir::open(&empty, ExistingRun::Overwrite).unwrap();
}

#[test]
fn a_live_run_directory_is_locked_against_a_second_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("live");
    let live = RunDir::open(&root, ExistingRun::Refuse).unwrap();
    live.write_config("[run]\n").unwrap();
    assert!(root.join(OWNED_MARKER).is_file());
    for mode in [ExistingRun::Resume, ExistingRun::Overwrite] {
        let e = RunDir::open(&root, mode).unwrap_err();
        assert!(matches!(e, RunDirError::Owned(OwnedDirError::InUse(_))), "{mode:?}: {e}");
    }
    assert!(root.join("config.toml").is_file(), "the live run is untouched");
    drop(live);
    RunDir::open(&root, ExistingRun::Resume).unwrap();
}

#[test]
fn overwrite_refuses_the_working_directory_and_its_ancestors_whatever_they_hold() {
    let cwd = std::env::current_dir().unwrap();
    for dir in [std::path::PathBuf::from("."), std::path::PathBuf::from(".."), std::path::PathBuf::from("/"), cwd] {
        let e = RunDir::open(&dir, ExistingRun::Overwrite).unwrap_err();
        assert!(matches!(e, RunDirError::Owned(OwnedDirError::Protected { .. })), "{}: {e}", dir.display());
    }
    assert!(std::path::Path::new("Cargo.toml").is_file());
}

#[test]
fn atomic_writes_replace_whole_files_and_leave_no_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sub/dir/file.json");
    write_file_atomic(&path, b"first").unwrap();
    write_file_atomic(&path, b"second").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second");
    let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("file.json")]);
}

/// Writes checkpoint `dest` with one file holding `content`, through the run directory's writer.
fn write_ckpt(dest: &Path, content: &str) -> std::path::PathBuf {
    write_checkpoint::<RunDirError>(dest, |tmp| {
        assert!(tmp.to_string_lossy().ends_with(".memrl-tmp"), "{}", tmp.display());
        fs::write(tmp.join("model.safetensors"), content).unwrap();
        fs::create_dir_all(tmp.join("optimizer")).unwrap();
        fs::write(tmp.join("optimizer/state.bin"), content).unwrap();
        Ok(())
    })
    .unwrap();
    dest.to_path_buf()
}

#[test]
fn only_complete_checkpoints_count() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert_eq!(latest_complete_checkpoint(&dir.join("missing")).unwrap(), None);

    for step in [10u64, 20] {
        let done = write_ckpt(&dir.join(checkpoint_dir_name(step)), &format!("weights {step}"));
        assert!(done.join("COMPLETE").is_file());
        assert_eq!(fs::read_to_string(done.join("optimizer/state.bin")).unwrap(), format!("weights {step}"));
    }
    write_ckpt(&dir.join(sft_checkpoint_dir_name(5)), "sft 5");
    // A write a crash cut short leaves step-30.memrl-tmp; a hand-made step-40 lacks COMPLETE;
    // junk names are ignored.
    fs::create_dir_all(dir.join("step-30.memrl-tmp")).unwrap();
    fs::write(dir.join("step-30.memrl-tmp/model.safetensors"), "partial").unwrap();
    fs::create_dir_all(dir.join("step-40")).unwrap();
    fs::create_dir_all(dir.join("step-x")).unwrap();
    fs::write(dir.join("step-50"), "a file, not a directory").unwrap();
    let (step, path) = latest_complete_checkpoint(dir).unwrap().unwrap();
    assert_eq!((step, path), (20, dir.join("step-20")));
    assert_eq!(complete_sft_checkpoints(dir).unwrap(), vec![(5, dir.join("sft-step-5"))]);

    // Redoing step 20 (after a resume) replaces it whole, with no temporary left.
    write_ckpt(&dir.join("step-20"), "weights 20 again");
    assert_eq!(fs::read_to_string(dir.join("step-20/model.safetensors")).unwrap(), "weights 20 again");
    assert!(!dir.join("step-20.memrl-tmp").exists() && !dir.join("step-20.memrl-old").exists());

    // Pruning keeps the newest complete RL one and leaves SFT checkpoints to their own pruning.
    let deleted = prune_checkpoints(dir, 1).unwrap();
    assert_eq!(deleted, vec![dir.join("step-10")]);
    let steps: Vec<u64> = complete_checkpoints(dir).unwrap().into_iter().map(|(s, _)| s).collect();
    assert_eq!(steps, vec![20]);
    assert_eq!(remove_sft_checkpoints(dir).unwrap(), vec![dir.join("sft-step-5")]);
}

#[test]
fn recovery_removes_only_memrls_own_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_ckpt(&dir.join("step-2"), "two");
    // What crashed writers leave: this version's temporaries, a checkpoint moved aside whose
    // replacement never arrived, and the names older versions used.
    for d in ["step-3.memrl-tmp", "sft-step-8.memrl-tmp", "step-3.tmp", "step-4.tmp.tmp", "step-4.tmp.old", "step-5.replaced.tmp"] {
        fs::create_dir_all(dir.join(d)).unwrap();
        fs::write(dir.join(d).join("model.safetensors"), "partial").unwrap();
    }
    let moved = write_ckpt(&dir.join("step-6"), "six");
    fs::rename(&moved, dir.join("step-6.memrl-old")).unwrap();
    // Not memrl's: kept.
    for d in ["my-notes", "backup.tmp", "step-x.tmp"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    let mut removed = recover_checkpoints(dir).unwrap();
    removed.sort();
    let mut expected: Vec<_> = ["sft-step-8.memrl-tmp", "step-3.memrl-tmp", "step-3.tmp", "step-4.tmp.old", "step-4.tmp.tmp", "step-5.replaced.tmp"]
        .iter()
        .map(|d| dir.join(d))
        .collect();
    expected.sort();
    assert_eq!(removed, expected);
    let mut left: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, ["backup.tmp", "my-notes", "step-2", "step-6", "step-x.tmp"]);
    assert_eq!(fs::read_to_string(dir.join("step-6/model.safetensors")).unwrap(), "six");
    assert_eq!(complete_checkpoints(dir).unwrap().len(), 2);
}
