//! # coditect-migrate
//!
//! Blue-green migration of v1 users (four ephemeral sandboxes each) to v2 (one persistent
//! workspace each): plan, run, verify, cutover, rollback and status, in resumable,
//! idempotent, checksummed batches.
//!
//! Depends on the control plane and below; nothing but the CLI imports it.
