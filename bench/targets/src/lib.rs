//! What the benchmark binaries of `bench/targets` share: the floor loads, the least work a
//! Tokio-based generator can do for the benchmarks' traffic (see [`floor`]).

pub mod floor;
