//! # coditect-ops
//!
//! Operations around running workspaces: the auto-sleep policy (a workspace is idle only
//! when no client is connected, no task is queued or running, no model call is in flight,
//! no lock is held and no keep-alive is in force, outside its keep-awake windows) and the
//! auto-sleeper that applies it; the cost model (prices as data, arithmetic as one pure
//! function) behind `coditect cost`; the cost report, which prices the control plane's
//! measured usage per workspace, team and organization; and the budget watch, which raises
//! an organization's `BudgetAlert` condition.
//! `ops/deploy/` will hold the Kubernetes manifests (CRDs, operator, RBAC).
//!
//! ```text
//!  AutoSleeper::pass(now) ─► each Running workspace: GET /v1/status (probe) ─► facts
//!        │                    idle(facts, policy, now) ─► Sleep ─► status.sleep (wish)
//!        │                                                         └─► reconciler stops it
//!        └─► each workspace auto-sleep put to sleep: a window opens soon ─► wake (wish)
//! ```
//!
//! Depends on the control plane and below; nothing but the CLI imports it.

pub mod autosleep;
pub mod budget;
pub mod cost;
pub mod idle;
pub mod report;
pub mod schedule;
