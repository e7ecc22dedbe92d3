//! # coditect-ops
//!
//! Operations around running workspaces: the auto-sleep policy (a workspace is idle only
//! when no client is connected, no task is queued or running and no model call is in
//! flight) and the cost model behind `coditect cost report`. `ops/deploy/` holds the
//! Kubernetes manifests (CRDs, operator, RBAC).
//!
//! Depends on the control plane and below; nothing but the CLI imports it.
