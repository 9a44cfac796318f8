//! Benchmarks that run from the product binary (`offboard bench …`), so anyone can
//! reproduce the numbers in BENCHMARKS.md on their own machine. Each reports ratios
//! against a baseline measured in the same run, never absolute thresholds.

pub mod pacing;
