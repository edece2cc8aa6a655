//! Rollout segments to and from Parquet (`rollouts/step-N.parquet`), zstd-compressed.
//!
//! One row per segment. Columns (none nullable):
//!
//! | column | type | meaning |
//! |---|---|---|
//! | trajectory_id, group_id | uint64 | ids |
//! | segment_index | uint32 | position in the trajectory |
//! | is_last | bool | final segment of its trajectory |
//! | prompt_ids, response_ids | list<uint32> | exact tokens |
//! | loss_mask | list<uint8> | 1 on policy tokens |
//! | rollout_logprobs | list<float32> | sampling log-probs (0 on env tokens) |
//! | advantage | float64 | the trajectory's advantage |
//! | reward | float64 | the trajectory's reward |
//! | policy_version | uint64 | oldest weights that generated the segment |
//! | prompt_text, response_text | utf8 | decoded text, as supplied by the caller |
//!
//! `scripts/check_parquet.py` reads a file with pyarrow to check interoperability.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Builder, Float64Array, ListBuilder, RecordBatch, StringArray, UInt8Builder, UInt32Array, UInt32Builder,
    UInt64Array,
};
use arrow::datatypes::{DataType, Field, Float32Type, Schema, UInt8Type, UInt32Type};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::run_dir::{RunDirError, write_file_atomic};
use memrl_rl::segments::Segment;

/// One stored row: a segment with its trajectory's outcome and decoded text.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutRecord {
    /// The segment (exact tokens, mask, log-probs).
    pub segment: Segment,
    /// The trajectory's advantage.
    pub advantage: f64,
    /// The trajectory's reward.
    pub reward: f64,
    /// The prompt decoded to text (for reading, never for training).
    pub prompt_text: String,
    /// The response decoded to text.
    pub response_text: String,
}

/// Errors from the rollout store.
#[derive(Debug, thiserror::Error)]
pub enum RolloutStoreError {
    /// A segment's per-token vectors do not line up.
    #[error("record {row}: {what} has length {got}, response_ids has {expected}")]
    Misaligned {
        /// The record index.
        row: usize,
        /// Which vector.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The response length.
        expected: usize,
    },
    /// Arrow or Parquet failed while encoding.
    #[error("encoding rollouts for {path}: {message}")]
    Encode {
        /// The destination.
        path: PathBuf,
        /// The library's message.
        message: String,
    },
    /// The file could not be read or decoded as Parquet.
    #[error("reading {path}: {message}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The library's message.
        message: String,
    },
    /// A column is missing or has the wrong type.
    #[error("{path}: column `{column}`: expected {expected}")]
    Schema {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// The expected type.
        expected: &'static str,
    },
    /// The atomic write failed.
    #[error(transparent)]
    Write(#[from] RunDirError),
}

/// A non-nullable list-of-`item` data type.
fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, false)))
}

/// The Arrow schema of a rollout file.
pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("trajectory_id", DataType::UInt64, false),
        Field::new("group_id", DataType::UInt64, false),
        Field::new("segment_index", DataType::UInt32, false),
        Field::new("is_last", DataType::Boolean, false),
        Field::new("prompt_ids", list_of(DataType::UInt32), false),
        Field::new("response_ids", list_of(DataType::UInt32), false),
        Field::new("loss_mask", list_of(DataType::UInt8), false),
        Field::new("rollout_logprobs", list_of(DataType::Float32), false),
        Field::new("advantage", DataType::Float64, false),
        Field::new("reward", DataType::Float64, false),
        Field::new("policy_version", DataType::UInt64, false),
        Field::new("prompt_text", DataType::Utf8, false),
        Field::new("response_text", DataType::Utf8, false),
    ])
}

fn u32_lists<'a>(rows: impl Iterator<Item = &'a Vec<u32>>) -> ArrayRef {
    let mut b = ListBuilder::new(UInt32Builder::new()).with_field(Field::new("item", DataType::UInt32, false));
    for r in rows {
        b.values().append_slice(r);
        b.append(true);
    }
    Arc::new(b.finish())
}

/// Builds the record batch for `records`.
pub fn to_record_batch(records: &[RolloutRecord]) -> Result<RecordBatch, RolloutStoreError> {
    for (row, r) in records.iter().enumerate() {
        let n = r.segment.response_ids.len();
        for (what, got) in [("loss_mask", r.segment.loss_mask.len()), ("rollout_logprobs", r.segment.rollout_logprobs.len())] {
            if got != n {
                return Err(RolloutStoreError::Misaligned { row, what, got, expected: n });
            }
        }
    }
    let segs = || records.iter().map(|r| &r.segment);
    let mut mask = ListBuilder::new(UInt8Builder::new()).with_field(Field::new("item", DataType::UInt8, false));
    let mut logprobs = ListBuilder::new(Float32Builder::new()).with_field(Field::new("item", DataType::Float32, false));
    for s in segs() {
        mask.values().append_slice(&s.loss_mask);
        mask.append(true);
        logprobs.values().append_slice(&s.rollout_logprobs);
        logprobs.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(segs().map(|s| s.trajectory_id))),
        Arc::new(UInt64Array::from_iter_values(segs().map(|s| s.group_id))),
        Arc::new(UInt32Array::from_iter_values(segs().map(|s| s.index))),
        Arc::new(BooleanArray::from(segs().map(|s| s.is_last).collect::<Vec<_>>())),
        u32_lists(segs().map(|s| &s.prompt_ids)),
        u32_lists(segs().map(|s| &s.response_ids)),
        Arc::new(mask.finish()),
        Arc::new(logprobs.finish()),
        Arc::new(Float64Array::from_iter_values(records.iter().map(|r| r.advantage))),
        Arc::new(Float64Array::from_iter_values(records.iter().map(|r| r.reward))),
        Arc::new(UInt64Array::from_iter_values(segs().map(|s| s.policy_version))),
        Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.prompt_text.as_str()))),
        Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.response_text.as_str()))),
    ];
    RecordBatch::try_new(Arc::new(schema()), columns).map_err(|e| RolloutStoreError::Encode { path: PathBuf::new(), message: e.to_string() })
}

/// Writes `records` to `path` as zstd-compressed Parquet, atomically.
pub fn write_rollouts(path: &Path, records: &[RolloutRecord]) -> Result<(), RolloutStoreError> {
    let encode = |e: &dyn std::fmt::Display| RolloutStoreError::Encode { path: path.to_path_buf(), message: e.to_string() };
    let batch = to_record_batch(records)?;
    let level = ZstdLevel::try_new(3).map_err(|e| encode(&e))?;
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(level)).build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props)).map_err(|e| encode(&e))?;
    writer.write(&batch).map_err(|e| encode(&e))?;
    writer.close().map_err(|e| encode(&e))?;
    write_file_atomic(path, &bytes)?;
    Ok(())
}

/// Looks a column up by name and downcasts it, or names it in the error.
fn column<'a, T: 'static>(batch: &'a RecordBatch, path: &Path, name: &str, expected: &'static str) -> Result<&'a T, RolloutStoreError> {
    let schema_err = || RolloutStoreError::Schema { path: path.to_path_buf(), column: name.to_string(), expected };
    let array = batch.column_by_name(name).ok_or_else(schema_err)?;
    if array.null_count() > 0 {
        return Err(schema_err());
    }
    array.as_any().downcast_ref::<T>().ok_or_else(schema_err)
}

/// Reads the `row`-th list of a list<P> column as a Vec.
fn list_column<P: arrow::datatypes::ArrowPrimitiveType>(
    batch: &RecordBatch,
    path: &Path,
    name: &str,
    expected: &'static str,
) -> Result<Vec<Vec<P::Native>>, RolloutStoreError> {
    let schema_err = || RolloutStoreError::Schema { path: path.to_path_buf(), column: name.to_string(), expected };
    let array = batch.column_by_name(name).ok_or_else(schema_err)?;
    let list = array.as_list_opt::<i32>().ok_or_else(schema_err)?;
    let values = list.values().as_primitive_opt::<P>().ok_or_else(schema_err)?;
    if list.null_count() > 0 || values.null_count() > 0 {
        return Err(schema_err());
    }
    let offsets = list.value_offsets();
    let raw = values.values();
    Ok(offsets.windows(2).map(|w| raw[w[0] as usize..w[1] as usize].to_vec()).collect())
}

/// Reads every record of a rollout file.
pub fn read_rollouts(path: &Path) -> Result<Vec<RolloutRecord>, RolloutStoreError> {
    let decode = |e: &dyn std::fmt::Display| RolloutStoreError::Decode { path: path.to_path_buf(), message: e.to_string() };
    let file = std::fs::File::open(path).map_err(|e| decode(&e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| decode(&e))?.build().map_err(|e| decode(&e))?;
    let mut records = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| decode(&e))?;
        let trajectory_id = column::<UInt64Array>(&batch, path, "trajectory_id", "uint64")?;
        let group_id = column::<UInt64Array>(&batch, path, "group_id", "uint64")?;
        let index = column::<UInt32Array>(&batch, path, "segment_index", "uint32")?;
        let is_last = column::<BooleanArray>(&batch, path, "is_last", "bool")?;
        let advantage = column::<Float64Array>(&batch, path, "advantage", "float64")?;
        let reward = column::<Float64Array>(&batch, path, "reward", "float64")?;
        let policy_version = column::<UInt64Array>(&batch, path, "policy_version", "uint64")?;
        let prompt_text = column::<StringArray>(&batch, path, "prompt_text", "utf8")?;
        let response_text = column::<StringArray>(&batch, path, "response_text", "utf8")?;
        let prompt_ids = list_column::<UInt32Type>(&batch, path, "prompt_ids", "list<uint32>")?;
        let response_ids = list_column::<UInt32Type>(&batch, path, "response_ids", "list<uint32>")?;
        let loss_mask = list_column::<UInt8Type>(&batch, path, "loss_mask", "list<uint8>")?;
        let rollout_logprobs = list_column::<Float32Type>(&batch, path, "rollout_logprobs", "list<float32>")?;
        let rows = prompt_ids.into_iter().zip(response_ids).zip(loss_mask).zip(rollout_logprobs);
        for (i, (((prompt_ids, response_ids), loss_mask), rollout_logprobs)) in rows.enumerate() {
            for (what, got) in [("loss_mask", loss_mask.len()), ("rollout_logprobs", rollout_logprobs.len())] {
                if got != response_ids.len() {
                    return Err(RolloutStoreError::Misaligned { row: records.len(), what, got, expected: response_ids.len() });
                }
            }
            records.push(RolloutRecord {
                segment: Segment {
                    trajectory_id: trajectory_id.value(i),
                    group_id: group_id.value(i),
                    index: index.value(i),
                    is_last: is_last.value(i),
                    prompt_ids,
                    response_ids,
                    loss_mask,
                    rollout_logprobs,
                    policy_version: policy_version.value(i),
                },
                advantage: advantage.value(i),
                reward: reward.value(i),
                prompt_text: prompt_text.value(i).to_string(),
                response_text: response_text.value(i).to_string(),
            });
        }
    }
    Ok(records)
}
