//! # coditect-runtime
//!
//! One workspace instance: its storage layout, the six SQLite databases, the hash-chained
//! JSONL event log, file locks with leases and fencing tokens, per-agent task queues, the
//! message bus, agents, object-store sync and the HTTP/WebSocket API.
//!
//! Depends on `coditect-specs` only; it must never import the control plane or anything
//! above it (the control plane starts runtime instances, not the other way round).
