#!/usr/bin/env python3
"""Check that a memrl rollout file (rollouts/step-N.parquet) reads in pyarrow and pandas.

Usage:
    python scripts/check_parquet.py FILE.parquet

Needs pyarrow and pandas (both in .venv-ci). `cargo test -p memrl-trainer --test core_rollout_store`
runs it on a sample file the Rust writer made, with $MEMRL_PYTHON; to keep that file:
    MEMRL_WRITE_SAMPLE_PARQUET=sample.parquet \
        cargo test -p memrl-trainer --test core_rollout_store write_sample_for_python_check
Exits non-zero, naming the column or row, on any mismatch.
"""
import sys

import pyarrow as pa
import pyarrow.parquet as pq

EXPECTED = {
    "trajectory_id": pa.uint64(),
    "group_id": pa.uint64(),
    "segment_index": pa.uint32(),
    "is_last": pa.bool_(),
    "prompt_ids": pa.list_(pa.uint32()),
    "response_ids": pa.list_(pa.uint32()),
    "loss_mask": pa.list_(pa.uint8()),
    "rollout_logprobs": pa.list_(pa.float32()),
    "advantage": pa.float64(),
    "reward": pa.float64(),
    "policy_version": pa.uint64(),
    "prompt_text": pa.string(),
    "response_text": pa.string(),
}


def fail(msg: str) -> None:
    print(f"check_parquet: {msg}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    if len(sys.argv) != 2:
        fail("usage: check_parquet.py FILE.parquet")
    table = pq.read_table(sys.argv[1])
    for name, typ in EXPECTED.items():
        if name not in table.column_names:
            fail(f"missing column {name}")
        got = table.schema.field(name).type
        # Compare value types only: list item field names/nullability may differ by writer.
        base = got.value_type if pa.types.is_list(got) else got
        want = typ.value_type if pa.types.is_list(typ) else typ
        if pa.types.is_list(got) != pa.types.is_list(typ) or base != want:
            fail(f"column {name}: type {got}, expected {typ}")
    df = table.to_pandas()
    for i, row in df.iterrows():
        n = len(row["response_ids"])
        if len(row["loss_mask"]) != n or len(row["rollout_logprobs"]) != n:
            fail(f"row {i}: loss_mask/rollout_logprobs not aligned with response_ids")
        for m, lp in zip(row["loss_mask"], row["rollout_logprobs"]):
            if m == 0 and lp != 0.0:
                fail(f"row {i}: non-zero log-prob on an environment token")
    last = df.groupby("trajectory_id")["is_last"].sum()
    if (last != 1).any():
        fail("some trajectory does not have exactly one is_last segment")
    print(f"ok: {len(df)} segments, {df['trajectory_id'].nunique()} trajectories, "
          f"{int(df['loss_mask'].map(sum).sum())} policy tokens; pyarrow {pa.__version__}")
    print(df[["trajectory_id", "group_id", "segment_index", "is_last", "advantage", "reward",
              "policy_version", "prompt_text"]].to_string(index=False))


if __name__ == "__main__":
    main()
