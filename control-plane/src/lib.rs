//! # coditect-control-plane
//!
//! The API server, the resource store, the reconcilers that turn declared workspaces into
//! running runtime instances, the runtime drivers (local processes today; Kubernetes
//! next, behind the same trait) and the gateway that routes a client to its workspace.
//!
//! ```text
//!  coditect apply ─► API server ─► apply::plan ─► Store (SQLite, resourceVersion, change log)
//!                                                   │ changes (spec, deletion)
//!                                                   ▼
//!                      Controller ─► WorkQueue ─► reconcile ─► Driver (local processes)
//!                                                   │ status                │
//!                                                   └──► Store              ▼
//!  client ─► gateway /w/{org}/{ws}/… ─────────────────────────► workspace instance API
//!     every route: access (token ─► identity ─► roles from the specs ─► audit trail)
//! ```
//!
//! Depends on `coditect-specs` and `coditect-runtime`; it must never import ops, migrate,
//! loadtest or the CLI.

pub mod access;
pub mod apply;
pub mod client;
pub mod conditions;
pub mod controller;
pub mod delegated;
pub mod diff;
pub mod driver;
pub mod error;
pub mod gateway;
pub mod kubernetes;
pub mod queue;
pub mod quota;
pub mod reconcile;
pub mod resource_store;
pub mod selector;
pub mod server;
pub mod sleep;
pub mod store;
pub mod studio;
pub mod up;
pub mod usage;
mod watch;
