//! # coditect-migrate
//!
//! Blue-green migration of v1 users (four ephemeral sandboxes each) to v2 (one persistent
//! workspace each): plan, run, verify, cutover, rollback and status, in resumable,
//! idempotent, checksummed batches.
//!
//! Built so far: the v1 export reader ([`export`]), the merge of four sandboxes into one
//! tree ([`merge`]), transcripts as events ([`transcript`]), the `Migration` manifest
//! ([`spec`]), the offline plan ([`plan`]), the copy of a user's tree ([`copy`]) and its
//! verification with a grade ([`verify`]), and the reverse path a rollback takes
//! ([`rollback`]).
//!
//! Depends on the control plane and below; nothing but the CLI imports it.

pub mod copy;
pub mod destination;
pub mod error;
pub mod export;
pub mod merge;
pub mod plan;
pub mod reconciler;
pub mod record;
pub mod rollback;
pub mod spec;
pub mod steps;
#[cfg(feature = "testkit")]
pub mod synthetic;
pub mod transcript;
pub mod verify;
