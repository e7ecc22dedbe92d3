//! # coditect-control-plane
//!
//! The API server, the resource store, the reconcilers that turn declared workspaces into
//! running runtime instances, the runtime drivers (local processes, Kubernetes) and the
//! gateway that routes a client to its workspace.
//!
//! Depends on `coditect-specs` and `coditect-runtime`; it must never import ops, migrate,
//! loadtest or the CLI.
