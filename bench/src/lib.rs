//! Echo benchmark for hookup: peer WebSocket echo servers, a load generator and a driver.
//!
//! Binaries:
//! - `echo-server <impl> <addr>`: one echo server (single-threaded tokio runtime).
//! - `load`: the load generator (hand-rolled client: static handshake, one pre-encoded
//!   masked frame, W messages in flight per connection).
//! - `bench-run`: the driver (pins server/load to cores, samples /proc, prints tables).

pub mod procfs;
pub mod servers;

/// Error type used throughout the bench.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
