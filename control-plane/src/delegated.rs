//! Kinds whose reconciler lives above the control plane. A Migration's steps need the
//! migration crate (the v1 export, the merge, verification), which itself builds on the
//! control plane; so the control plane stores, serves and queues Migrations like any
//! kind, and hands their reconcile to what the binary plugged in when it started.
//!
//! ```text
//!  coditect up ──► UpOptions.delegated: [factory] ──► factory(&Plane) ──► Context.delegated
//!  controller ─► reconcile(key) ─► Resource::Migration ─► DelegatedReconciler::reconcile
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use coditect_specs::{Kind, ObjectKey};

use crate::error::ReconcileError;
use crate::reconcile::Action;

/// A reconcile in flight.
pub type Reconciling<'a> =
    Pin<Box<dyn Future<Output = Result<Action, ReconcileError>> + Send + 'a>>;

/// The reconciler of one kind, written elsewhere.
pub trait DelegatedReconciler: Send + Sync + std::fmt::Debug {
    /// The kind it reconciles.
    fn kind(&self) -> Kind;

    /// One step toward convergence of the object at `key` (as any reconciler: read,
    /// observe, act once, write status, say when to look again).
    fn reconcile<'a>(&'a self, key: &'a ObjectKey) -> Reconciling<'a>;
}

/// What a delegated reconciler may use of the embedded control plane.
#[derive(Debug, Clone)]
pub struct Plane {
    /// The store (objects, and the delegated kind's own tables).
    pub store: Arc<crate::store::Store>,
    /// Each running instance's token.
    pub instances: Arc<dyn crate::driver::InstanceTokens>,
    /// The gateway's per-user routes (`/u/{login}/…`).
    pub users: Arc<crate::gateway::users::UserRoutes>,
    /// Asks the controller to reconcile an object now.
    pub nudge: tokio::sync::mpsc::UnboundedSender<ObjectKey>,
}

/// Makes a delegated reconciler from the control plane's parts.
pub type MakeReconciler = dyn Fn(&Plane) -> Arc<dyn DelegatedReconciler> + Send + Sync;

/// Builds a delegated reconciler once the control plane's parts exist.
#[derive(Clone)]
pub struct DelegatedFactory(pub Arc<MakeReconciler>);

impl std::fmt::Debug for DelegatedFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DelegatedFactory")
    }
}
