//! Peer-comparison benchmarks; see `benches/`.
