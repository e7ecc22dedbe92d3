//! Runs the reconcilers: feeds the work queue from store changes (spec changes, creations
//! and deletions; not status writes, which would loop), from instance exits and from a
//! periodic resync, and runs up to a few reconciles at once with per-key backoff.
//!
//! ```text
//!  store changes ──┐
//!  instance exits ─┼─► WorkQueue ─► workers (≤ 4) ─► reconcile ─► Action / error_policy
//!  resync tick ────┘        ▲                                        │
//!                           └──────────── requeue after ◄────────────┘
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use coditect_specs::{Kind, ObjectKey, Resource};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

use crate::driver::Driver;
use crate::queue::WorkQueue;
use crate::reconcile::{Action, Context, backoff, reconcile};
use crate::resource_store::ResourceStore;
use crate::selector::LabelSelector;
use crate::store::{ChangeType, Store};

/// Reconciles at once, at most.
const WORKERS: usize = 4;
/// How long an organization's or team's roll-up waits for more of its workspaces'
/// changes: it reads every workspace in scope, so it runs at most this often.
const ROLLUP_COALESCE: std::time::Duration = std::time::Duration::from_millis(250);
/// Crashes closer together than this count as a crash loop.
const CRASH_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// The running controller.
#[derive(Debug)]
pub struct Controller<D, S = Store> {
    ctx: Arc<Context<D, S>>,
    queue: WorkQueue,
    failures: Mutex<HashMap<ObjectKey, u32>>,
    /// Objects not yet reconciled since start; when it empties, `synced` turns true.
    initial: Mutex<std::collections::HashSet<ObjectKey>>,
    synced: tokio::sync::watch::Sender<bool>,
}

impl<D: Driver, S: ResourceStore> Controller<D, S> {
    /// A controller over `ctx`.
    pub fn new(ctx: Context<D, S>) -> Arc<Self> {
        let (synced, _) = tokio::sync::watch::channel(false);
        Arc::new(Controller {
            ctx: Arc::new(ctx),
            queue: WorkQueue::default(),
            failures: Mutex::new(HashMap::new()),
            initial: Mutex::new(std::collections::HashSet::new()),
            synced,
        })
    }

    /// Turns true once every object that existed at start has been reconciled once
    /// (instances adopted or started): what `/readyz` reports.
    pub fn synced(&self) -> tokio::sync::watch::Receiver<bool> {
        self.synced.subscribe()
    }

    fn initial_done(&self, key: &ObjectKey) {
        let mut initial = self.initial.lock().unwrap_or_else(|p| p.into_inner());
        if initial.remove(key) && initial.is_empty() {
            let _ = self.synced.send(true);
        }
    }

    /// The queue (to enqueue by hand, e.g. after an apply).
    pub fn queue(&self) -> &WorkQueue {
        &self.queue
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(
        self: Arc<Self>,
        mut exits: mpsc::UnboundedReceiver<ObjectKey>,
        mut nudges: mpsc::UnboundedReceiver<ObjectKey>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut changes = self.ctx.store.subscribe();
        // Orphans go first, so that readiness means "only declared instances run".
        let known: Vec<ObjectKey> = self
            .all_keys()
            .await
            .into_iter()
            .filter(|k| k.kind == Kind::Workspace)
            .collect();
        for orphan in self.ctx.driver.reap_orphans(&known).await {
            tracing::info!(workspace = %orphan, "reaped orphaned instance");
        }
        {
            let keys = self.all_keys().await;
            let mut initial = self.initial.lock().unwrap_or_else(|p| p.into_inner());
            initial.extend(keys);
            if initial.is_empty() {
                let _ = self.synced.send(true);
            }
        }
        self.enqueue_all().await;
        let mut crashes: HashMap<ObjectKey, (u32, tokio::time::Instant)> = HashMap::new();
        let workers = Arc::new(Semaphore::new(WORKERS));
        let mut resync = tokio::time::interval(self.ctx.resync);
        let mut seen_generation: HashMap<ObjectKey, i64> = HashMap::new();
        // Reconciles in flight. Dropping this future (the operator lost its Lease) aborts
        // them, so a replica that no longer leads writes nothing more; a shutdown lets
        // them finish on their own, as before.
        let mut in_flight = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                change = changes.recv() => match change {
                    Ok(c) => self.on_change(c.change, &c.object, &mut seen_generation),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.enqueue_all().await,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                Some(key) = exits.recv() => {
                    // Restart at once after a first crash; back off when it keeps crashing.
                    let now = tokio::time::Instant::now();
                    let entry = crashes.entry(key.clone()).or_insert((0, now));
                    entry.0 = if now.duration_since(entry.1) < CRASH_WINDOW { entry.0 + 1 } else { 1 };
                    entry.1 = now;
                    let delay = if entry.0 <= 1 { std::time::Duration::ZERO } else { backoff(entry.0 - 1) };
                    tracing::warn!(workspace = %key, crashes = entry.0, restart_in = ?delay, "instance exited");
                    self.queue.add_after(key, delay);
                }
                // A status-only wish (sleep, wake) that must be acted on now.
                Some(key) = nudges.recv() => self.queue.add(key),
                _ = resync.tick() => self.enqueue_all().await,
                key = self.queue.next() => {
                    let Ok(permit) = workers.clone().acquire_owned().await else { break };
                    let this = self.clone();
                    in_flight.spawn(async move {
                        this.work(&key).await;
                        this.queue.done(&key);
                        this.initial_done(&key);
                        drop(permit);
                    });
                }
            }
        }
        in_flight.detach_all();
    }

    async fn work(&self, key: &ObjectKey) {
        match reconcile(key, &self.ctx).await {
            Ok(action) => {
                self.failures().remove(key);
                if let Action::Requeue(after) = action {
                    self.queue.add_after(key.clone(), after);
                }
            }
            Err(e) => {
                let n = {
                    let mut f = self.failures();
                    let n = f.entry(key.clone()).or_default();
                    *n += 1;
                    *n
                };
                let delay = backoff(n);
                tracing::warn!(object = %key, error = %e, failures = n, retry_in = ?delay, "reconcile failed");
                self.queue.add_after(key.clone(), delay);
            }
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues what a change concerns: the object itself unless only its status changed,
    /// and the organization and team whose roll-up it feeds.
    fn on_change(&self, change: ChangeType, object: &Value, seen: &mut HashMap<ObjectKey, i64>) {
        let Ok(r) = Resource::from_trusted_json(object.clone()) else {
            return;
        };
        let key = r.key();
        let meta = r.metadata();
        let generation = meta.generation.unwrap_or(0);
        let spec_changed = seen.insert(key.clone(), generation) != Some(generation);
        if change == ChangeType::Deleted {
            seen.remove(&key);
        }
        if spec_changed || meta.deletion_timestamp.is_some() || change != ChangeType::Modified {
            self.queue.add(key.clone());
        }
        if let (Kind::Workspace, Some(org)) = (key.kind, meta.organization.clone()) {
            self.queue.add_soon(
                ObjectKey {
                    kind: Kind::Organization,
                    organization: None,
                    name: org.clone(),
                },
                ROLLUP_COALESCE,
            );
            if let Some(team) = meta.team.clone() {
                self.queue.add_soon(
                    ObjectKey {
                        kind: Kind::Team,
                        organization: Some(org),
                        name: team,
                    },
                    ROLLUP_COALESCE,
                );
            }
        }
    }

    async fn all_keys(&self) -> Vec<ObjectKey> {
        self.ctx
            .store
            .list(None, None, &LabelSelector::default())
            .await
            .map(|all| all.iter().map(Resource::key).collect())
            .unwrap_or_default()
    }

    async fn enqueue_all(&self) {
        for key in self.all_keys().await {
            self.queue.add(key);
        }
    }
}
