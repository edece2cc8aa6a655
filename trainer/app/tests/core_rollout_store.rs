//! Rollout store: Parquet round trip, and clear errors for foreign or misaligned data.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use memrl_rl::segments::{SegmentationMode, TrajectoryRecorder};
use memrl_trainer::rollout_store::{RolloutRecord, RolloutStoreError, read_rollouts, write_rollouts};
use parquet::arrow::ArrowWriter;

fn records() -> Vec<RolloutRecord> {
    let mut r = TrajectoryRecorder::new(41, 4);
    r.push_turn(vec![1, 2, 3], vec![10, 11], vec![-0.5, -0.25], 2).unwrap();
    r.push_turn(vec![1, 2, 3, 10, 11, 20], vec![12], vec![-1.5], 2).unwrap();
    r.push_turn(vec![1, 12, 30], vec![u32::MAX], vec![-0.125], 3).unwrap(); // a fracture
    let segmentation = r.segment(SegmentationMode::Dcpo).unwrap();
    assert_eq!(segmentation.segments.len(), 2);
    segmentation
        .segments
        .into_iter()
        .enumerate()
        .map(|(i, segment)| RolloutRecord {
            segment, advantage: -0.75, reward: 0.25, prompt_text: format!("prompt {i} ünïcode"), response_text: String::new()
        })
        .collect()
}

#[test]
fn round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollouts/step-7.parquet");
    let written = records();
    write_rollouts(&path, &written).unwrap();
    assert_eq!(read_rollouts(&path).unwrap(), written);
    // An empty step is a valid, empty file.
    write_rollouts(&path, &[]).unwrap();
    assert_eq!(read_rollouts(&path).unwrap(), vec![]);
}

#[test]
fn misaligned_segments_are_rejected_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = records();
    bad[1].segment.loss_mask.pop();
    let err = write_rollouts(&dir.path().join("x.parquet"), &bad).unwrap_err();
    assert!(matches!(err, RolloutStoreError::Misaligned { row: 1, what: "loss_mask", .. }), "{err}");
}

#[test]
fn foreign_files_give_errors_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    // A Parquet file with a wrong-typed trajectory_id column.
    let path = dir.path().join("foreign.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new("trajectory_id", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["a"]))]).unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let err = read_rollouts(&path).unwrap_err();
    assert!(err.to_string().contains("trajectory_id") && err.to_string().contains("uint64"), "{err}");

    // A file missing later columns.
    let path = dir.path().join("partial.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new("trajectory_id", DataType::UInt64, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(UInt64Array::from(vec![1u64]))]).unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let err = read_rollouts(&path).unwrap_err();
    assert!(err.to_string().contains("group_id"), "{err}");

    // Not Parquet at all.
    let path = dir.path().join("text.parquet");
    std::fs::write(&path, "hello").unwrap();
    let err = read_rollouts(&path).unwrap_err();
    assert!(matches!(err, RolloutStoreError::Decode { .. }), "{err}");
}

/// Writes a sample rollout file (to MEMRL_WRITE_SAMPLE_PARQUET when set, otherwise to a
/// temporary directory); it must read back exactly, and pyarrow and pandas must read it with the
/// schema `scripts/check_parquet.py` expects. The Python side runs with `$MEMRL_PYTHON` (the
/// `.venv-ci` of scripts/test.sh); with MEMRL_CHECK_TRANSFORMERS=1 (CI) a missing interpreter
/// fails the test instead of leaving the check out.
#[test]
fn write_sample_for_python_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var("MEMRL_WRITE_SAMPLE_PARQUET").map(std::path::PathBuf::from).unwrap_or_else(|_| dir.path().join("sample.parquet"));
    write_rollouts(&path, &records()).unwrap();
    assert_eq!(read_rollouts(&path).unwrap(), records());
    let required = std::env::var("MEMRL_CHECK_TRANSFORMERS").is_ok_and(|v| v == "1");
    let Ok(python) = std::env::var("MEMRL_PYTHON") else {
        assert!(!required, "MEMRL_CHECK_TRANSFORMERS=1 but MEMRL_PYTHON is not set: the pyarrow / pandas check cannot run");
        eprintln!("MEMRL_PYTHON not set: the pyarrow / pandas read of the sample is left out");
        return;
    };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check_parquet.py");
    let out = std::process::Command::new(&python).arg(&script).arg(&path).output().expect("run the Python interpreter");
    assert!(out.status.success(), "{python} {}: {}{}", script.display(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
