//! # coditect-runtime
//!
//! One workspace instance: its storage layout, the six SQLite databases, the hash-chained
//! JSONL event log, file locks with leases and fencing tokens, per-agent task queues, the
//! message bus, and the HTTP/WebSocket API over them.
//!
//! ```text
//!              HTTP / WebSocket API (bearer token)
//!   ┌──────────┬──────────┬──────────┬──────────┬──────────┐
//!   │  tasks   │  locks   │  files   │   bus    │  events  │
//!   └────┬─────┴────┬─────┴────┬─────┴────┬─────┴────┬─────┘
//!        │          │          │          │          │
//!   six SQLite databases (WAL)           event log (JSONL, hash chain, group commit)
//!   └────────────── workspace folder, owned by one process (runtime.lock) ──────────┘
//! ```
//!
//! Depends on `coditect-specs` only; it must never import the control plane or anything
//! above it (the control plane starts runtime instances, not the other way round).

pub mod activity;
pub mod agents;
pub mod api;
pub mod bus;
pub mod clock;
pub mod db;
pub mod error;
pub mod events;
pub mod files;
pub mod layout;
pub mod locks;
pub mod metrics;
pub mod priority;
pub mod query;
pub mod secrets;
pub mod seed;
mod serve;
pub mod sessions;
pub mod shutdown;
pub mod sync;
pub mod tasks;
#[cfg(feature = "testkit")]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// test harness: a panic is a test failure
pub mod testkit;
pub mod workspace;

pub use serve::{ServeOptions, serve};
pub use workspace::{OpenError, WorkspaceRuntime, load_spec};
