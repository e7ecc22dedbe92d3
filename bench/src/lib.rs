//! # coditect-bench
//!
//! Criterion benchmarks of the hot paths and of the physical floors they are read against
//! (see `bench/README.md`). The library part holds only shared fixtures for the benches.
