//! One running workspace: the storage it owns and the services over it, assembled in the
//! order they depend on each other.
//!
//! ```text
//!  Layout (folder lock) ─► Databases ─► Sessions ─► EventLog ─► LockTable ─► ProjectFiles
//!                                                      ├──────► TaskQueues
//!                                                      └──────► MessageBus
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coditect_specs::{Resource, Workspace};
use serde::Serialize;
use serde_json::json;

use crate::bus::MessageBus;
use crate::db::Databases;
use crate::error::{LockError, StorageError};
use crate::events::{ChainBreak, ChainReport, EventDraft, EventLog, EventType};
use crate::files::ProjectFiles;
use crate::layout::{FolderLock, Layout};
use crate::locks::LockTable;
use crate::metrics::Metrics;
use crate::priority::{PriorityError, off_serving};
use crate::sessions::Sessions;
use crate::sync::replicator::SyncTarget;
use crate::tasks::TaskQueues;

/// Why a workspace could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Storage could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The lock table could not be loaded.
    #[error(transparent)]
    Locks(#[from] LockError),
    /// The spec file is not a single valid Workspace.
    #[error("spec: {0}")]
    Spec(String),
    /// The API token could not be read or written.
    #[error("api token: {0}")]
    Token(String),
    /// The workspace could not be restored from its bucket.
    #[error("restore from the bucket: {0}")]
    Restore(String),
    /// The spec's projects or tasks could not be seeded.
    #[error("seeding: {0}")]
    Seed(#[from] crate::seed::SeedError),
    /// Start-up work could not run off the serving threads.
    #[error(transparent)]
    StartUp(#[from] PriorityError),
}

/// A live workspace instance.
#[derive(Debug)]
pub struct WorkspaceRuntime {
    /// The effective spec it runs.
    pub spec: Workspace,
    /// Its folder.
    pub layout: Layout,
    /// The six databases.
    pub db: Arc<Databases>,
    /// The event log.
    pub events: EventLog,
    /// Sessions.
    pub sessions: Sessions,
    /// File locks.
    pub locks: Arc<LockTable>,
    /// Task queues.
    pub tasks: TaskQueues,
    /// Message bus.
    pub bus: MessageBus,
    /// Project files.
    pub files: ProjectFiles,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The API bearer token.
    pub token: String,
    /// What the agents have read and written, shared between them.
    pub context: crate::agents::context::SharedContext,
    /// What each agent is doing now.
    pub agents: crate::agents::AgentBoard,
    /// What keeps the workspace awake (requests, WebSockets, model calls, keep-alive).
    pub activity: Arc<crate::activity::Activity>,
    /// Where `secretRef`s are read from.
    secrets: PathBuf,
    /// Where it syncs to, if anywhere.
    pub sync_target: Option<SyncTarget>,
    /// The hot mirror that follows the sync target, if the organization has one.
    pub mirror_target: Option<SyncTarget>,
    /// How sync stands.
    pub sync: Arc<crate::sync::replicator::SyncStatus>,
    _folder: FolderLock,
}

/// The result of [`WorkspaceRuntime::verify`].
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// The event chain, or its first broken link.
    pub chain: Result<ChainReport, ChainBreak>,
    /// `PRAGMA integrity_check` of each database.
    pub databases: Vec<(String, String)>,
    /// Whether everything checked out.
    pub ok: bool,
}

/// How long the bucket may take to hand over a manifest before a restore reads the
/// mirror instead.
pub const PRIMARY_ANSWER: Duration = Duration::from_secs(10);

/// Where a restore reads from: the bucket, or the mirror when the bucket does not answer
/// in time.
async fn restore_source<'a>(
    primary: &'a SyncTarget,
    mirror: Option<&'a SyncTarget>,
) -> &'a SyncTarget {
    let Some(mirror) = mirror else {
        return primary;
    };
    match tokio::time::timeout(PRIMARY_ANSWER, crate::sync::restore::manifest(primary)).await {
        Ok(Err(crate::sync::restore::RestoreError::Store(e))) => {
            tracing::warn!(bucket = %primary.bucket.url(), mirror = %mirror.bucket.url(), error = %e, "the bucket does not answer: restoring from the mirror");
            mirror
        }
        Err(_) => {
            tracing::warn!(bucket = %primary.bucket.url(), mirror = %mirror.bucket.url(), "the bucket did not answer in time: restoring from the mirror");
            mirror
        }
        Ok(_) => primary,
    }
}

/// Reads a Workspace spec file (one document) and fills in its defaults.
///
/// # Errors
/// [`OpenError::Spec`] with the located errors.
pub fn load_spec(path: &Path) -> Result<Workspace, OpenError> {
    let docs = coditect_specs::load(path, false).map_err(|e| {
        let mut msg = e.to_string();
        for d in e.diagnostics() {
            msg.push_str(&format!("\n  {d}"));
        }
        OpenError::Spec(msg)
    })?;
    let mut workspaces = docs.into_iter().filter_map(|d| match d.resource {
        Resource::Workspace(w) => Some(w),
        _ => None,
    });
    let (Some(mut ws), None) = (workspaces.next(), workspaces.next()) else {
        return Err(OpenError::Spec(format!(
            "{} must hold exactly one Workspace",
            path.display()
        )));
    };
    let mut resource = Resource::Workspace(ws.clone());
    coditect_specs::apply_defaults(&mut resource, None);
    if let Resource::Workspace(w) = resource {
        ws = w;
    }
    Ok(ws)
}

impl WorkspaceRuntime {
    /// Opens the workspace `spec` under the storage `root`: claims its folder, opens and
    /// migrates the databases, repairs and opens the event log, restores the lock table,
    /// and continues or starts a session.
    ///
    /// # Errors
    /// [`OpenError`]; notably a second instance on the same folder fails with
    /// [`StorageError::FolderInUse`].
    pub async fn open(spec: Workspace, root: &Path) -> Result<Arc<Self>, OpenError> {
        Self::open_synced(spec, root, None).await
    }

    /// [`WorkspaceRuntime::open`], syncing to `target`: a workspace whose folder holds no
    /// databases yet is first restored from the bucket (when the bucket has it), so an
    /// instance on a fresh machine starts with everything the bucket kept.
    ///
    /// # Errors
    /// As [`WorkspaceRuntime::open`]; [`OpenError::Restore`] when the folder is empty
    /// and the bucket cannot be read (starting empty would lose the workspace).
    pub async fn open_synced(
        spec: Workspace,
        root: &Path,
        target: Option<SyncTarget>,
    ) -> Result<Arc<Self>, OpenError> {
        Self::open_mirrored(spec, root, target, None).await
    }

    /// [`WorkspaceRuntime::open_synced`] with a hot `mirror` of the bucket: an empty
    /// folder is restored from the mirror when the bucket does not answer (is down, or
    /// takes longer than [`PRIMARY_ANSWER`] to give the manifest).
    ///
    /// # Errors
    /// As [`WorkspaceRuntime::open_synced`].
    pub async fn open_mirrored(
        spec: Workspace,
        root: &Path,
        target: Option<SyncTarget>,
        mirror: Option<SyncTarget>,
    ) -> Result<Arc<Self>, OpenError> {
        let meta = &spec.metadata;
        let org = meta.organization.clone().unwrap_or_default();
        let team = meta.team.clone().unwrap_or_default();
        let layout = Layout::new(root, &org, &team, &spec.spec.owner, &meta.name);
        // Making the folders and the databases is most of a start's CPU, nearly all of it
        // the kernel creating files: it gives way to the instances already serving.
        let claiming = layout.clone();
        let folder = off_serving("start-up", move || claiming.claim()).await??;
        // A seal speaks for the stop that wrote it; from now on this instance changes things.
        let _ = std::fs::remove_file(layout.seal_file());
        let mut restored = None;
        if let Some(t) = &target
            && !layout.databases().join("sessions.db").exists()
        {
            let from = restore_source(t, mirror.as_ref()).await;
            restored = crate::sync::restore::restore(from, layout.root(), None, &|_, _, _| {})
                .await
                .map_err(|e| OpenError::Restore(e.to_string()))?;
            if let Some(r) = &restored {
                tracing::info!(
                    generation = r.generation,
                    last_seq = r.last_seq,
                    files = r.files,
                    bytes = r.bytes,
                    "restored the workspace from the bucket"
                );
            }
        }
        let s = &spec.spec;
        let (dir, max, renewable) = (
            layout.databases(),
            s.session.max_duration.to_std(),
            s.session.renewable,
        );
        let (db, sessions) = off_serving("start-up", move || {
            let db = Arc::new(Databases::open(&dir)?);
            let sessions = Sessions::open(db.clone(), max, renewable)?;
            Ok::<_, StorageError>((db, sessions))
        })
        .await??;
        // The event log's writer thread serves every durable append: it is started from
        // here, a serving thread, so it does not inherit the lowered priority.
        let session = sessions.current();
        let (events, recovery) = EventLog::open(&layout.sessions(), session.id)?;
        let metrics = Arc::new(Metrics::default());
        let locks = Arc::new(LockTable::open(
            db.clone(),
            events.clone(),
            metrics.clone(),
            s.locks.lease_ttl.to_std(),
            s.locks.acquire_timeout.to_std(),
        )?);
        let agents: Vec<String> = s.agents.iter().map(|a| a.name.clone()).collect();
        let roles = s
            .agents
            .iter()
            .map(|a| (a.name.clone(), a.role.as_str().to_string()));
        let tasks = TaskQueues::new(db.clone(), events.clone(), metrics.clone(), roles);
        let bus = MessageBus::new(db.clone(), events.clone(), agents);
        let files = ProjectFiles::new(layout.projects(), db.clone(), locks.clone(), events.clone());
        let secrets = crate::secrets::folder(root);
        let token = api_token(&spec, &layout.token_file(), &secrets)?;
        events
            .append(EventDraft::new(
                "runtime",
                EventType::Checkpoint,
                json!({"started": true, "session": session.id, "recovered_seq": recovery.last_seq, "truncated_bytes": recovery.truncated_bytes, "restored": restored}),
            ))
            .await?;
        tracing::info!(workspace = %meta.name, session = session.id, last_seq = recovery.last_seq, "workspace opened");
        let ws = Arc::new(WorkspaceRuntime {
            spec,
            layout,
            db,
            events,
            sessions,
            locks,
            tasks,
            bus,
            files,
            metrics,
            token,
            context: Default::default(),
            agents: Default::default(),
            activity: Default::default(),
            secrets,
            sync_target: target,
            mirror_target: mirror,
            sync: Default::default(),
            _folder: folder,
        });
        crate::seed::projects(&ws).await?;
        crate::seed::tasks(&ws).await?;
        Ok(ws)
    }

    /// Background duties (lease expiry, session rotation) until `shutdown` resolves.
    pub async fn run_background(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        tokio::pin!(shutdown);
        let expiry = tokio::spawn(self.locks.clone().run_expiry(std::future::pending::<()>()));
        loop {
            let wait = self.sessions.remaining().max(Duration::from_millis(100));
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {
                    if let Err(e) = self.sessions.rotate_if_expired(&self.events).await {
                        tracing::error!(error = %e, "session rotation failed");
                    }
                }
            }
        }
        expiry.abort();
        let _ = expiry.await;
    }

    /// Starts a loop for every agent whose model can run here (see `agents::models::choose`); the
    /// others report `unavailable`, with the reason, in the event log.
    ///
    /// Abort the returned loops (and await them) before stopping: they hold the workspace.
    pub fn start_agents(self: Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        use crate::agents::models::{AgentModel, ModelChoice, choose};
        use crate::agents::offline::OfflinePlanner;
        use crate::agents::runner;
        let mut loops = Vec::new();
        for agent in self.spec.spec.agents.clone() {
            let (name, steps) = (agent.name.clone(), agent.budget.max_steps);
            let note = |state: &str, reason: String| {
                self.events.append_nowait(EventDraft::new(
                    &name,
                    EventType::AgentStateChange,
                    json!({"state": state, "reason": reason}),
                ));
            };
            let model = match choose(&agent, &self.secrets) {
                ModelChoice::Provider(model) => model,
                ModelChoice::Offline(why) => {
                    if let Some(why) = why {
                        note(
                            "offline-fallback",
                            format!(
                                "{why}: running the offline planner in place of {}",
                                agent.provider.as_str()
                            ),
                        );
                    }
                    AgentModel::Offline(OfflinePlanner)
                }
                ModelChoice::Unavailable(why) => {
                    note(
                        "unavailable",
                        format!("{why}; set offlineFallback to run the offline planner instead"),
                    );
                    continue;
                }
            };
            let stop = std::future::pending::<()>();
            loops.push(tokio::spawn(runner::run(
                self.clone(),
                name.clone(),
                steps,
                model,
                stop,
            )));
        }
        loops
    }

    /// Checks the event chain and every database.
    pub fn verify(&self) -> VerifyReport {
        let chain = self.events.verify();
        let databases: Vec<(String, String)> = self
            .db
            .all()
            .iter()
            .map(|d| {
                (
                    d.name().to_string(),
                    d.integrity_check().unwrap_or_else(|e| e.to_string()),
                )
            })
            .collect();
        let ok = chain.is_ok() && databases.iter().all(|(_, r)| r == "ok");
        VerifyReport {
            chain,
            databases,
            ok,
        }
    }

    /// Records a clean stop. Every acknowledged event is already durable; this adds a
    /// final checkpoint so the log shows the stop was clean.
    ///
    /// # Errors
    /// When the checkpoint cannot be written.
    pub async fn stop(&self) -> Result<(), StorageError> {
        self.mark_stopped().await?;
        self.checkpoint_databases();
        Ok(())
    }

    /// Appends the clean-stop checkpoint event.
    ///
    /// # Errors
    /// When it cannot be written.
    pub async fn mark_stopped(&self) -> Result<(), StorageError> {
        self.events
            .append(EventDraft::new(
                "runtime",
                EventType::Checkpoint,
                json!({"stopped": true}),
            ))
            .await?;
        Ok(())
    }

    /// Folds every WAL into its database (after the last sync round).
    pub fn checkpoint_databases(&self) {
        for db in self.db.all() {
            let _ = db.read(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"));
        }
    }

    /// The workspace folder.
    pub fn root(&self) -> PathBuf {
        self.layout.root().to_path_buf()
    }
}

/// The API token: from the variable the spec names, else the token file (written 0600 on
/// first start with 32 random bytes), so clients keep working across restarts.
fn api_token(spec: &Workspace, file: &Path, secrets: &Path) -> Result<String, OpenError> {
    if let Some(token) =
        crate::secrets::resolve(spec.spec.api_token.as_ref(), secrets).map_err(OpenError::Token)?
    {
        return Ok(token);
    }
    if let Ok(existing) = std::fs::read_to_string(file) {
        let t = existing.trim().to_string();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let bytes: [u8; 32] = rand::random();
    let token = hex::encode(bytes);
    write_private(file, &token)
        .map_err(|e| OpenError::Token(format!("write {}: {e}", file.display())))?;
    Ok(token)
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
