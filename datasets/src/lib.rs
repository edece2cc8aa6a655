//! Benchmark loaders (LoCoMo, LongMemEval), their official scorers, synthetic task
//! generators and the Arrow/Parquet rollout store.
