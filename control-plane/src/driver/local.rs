//! The local driver: each workspace instance is a `coditect workspace-runtime` child
//! process on this machine.
//!
//! * **Start**: the effective spec is written to `<data>/specs/<org>/<name>.yaml`, the child
//!   is started in its own process group (so a Ctrl-C aimed at the control plane does not
//!   hit it, and a SIGKILLed control plane leaves it running), and its ready line gives
//!   the address. Its stderr goes to `<data>/logs/<org>-<name>.log`.
//! * **Discovery**: every instance writes `runtime.json` (pid, address) in its folder. A
//!   restarted control plane reads it and adopts the instance if `/v1/health`, called with
//!   the workspace's token, answers with the right workspace, instead of starting a
//!   duplicate (which the instance's folder lock would refuse anyway).
//! * **Exit**: a task waits on each child and reports its exit, so a crash is reconciled
//!   at once rather than at the next resync.
//! * **Orphans**: instances whose workspace is no longer in the store are stopped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coditect_runtime::layout::Layout;
use coditect_runtime::sync::Bucket;
use coditect_specs::{Kind, ObjectKey, Resource, Workspace};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::start_budget::StartBudget;
use super::{DiskRelease, Driver, Instance, InstanceTokens};
use crate::error::DriverError;

/// How long a starting instance may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopping instance may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Paths and the command of the local driver.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The control plane's data directory.
    pub data_dir: PathBuf,
    /// The `coditect` binary to run instances with.
    pub runtime_command: PathBuf,
}

#[derive(Debug, Clone)]
struct Known {
    pid: u32,
    endpoint: String,
    token: String,
}

/// Runs instances as local processes.
#[derive(Debug)]
pub struct LocalDriver {
    config: LocalConfig,
    known: Arc<Mutex<HashMap<ObjectKey, Known>>>,
    exits: mpsc::UnboundedSender<ObjectKey>,
    http: reqwest::Client,
    /// The starts under way, fewer while workspaces are being served.
    starts: StartBudget,
}

impl InstanceTokens for LocalDriver {
    fn token(&self, key: &ObjectKey) -> Option<String> {
        self.known().get(key).map(|k| k.token.clone())
    }

    fn forwarding(&self, _key: &ObjectKey) {
        self.starts.forwarded();
    }
}

impl LocalDriver {
    /// A driver; instance exits are reported on the returned channel.
    pub fn new(config: LocalConfig) -> (Self, mpsc::UnboundedReceiver<ObjectKey>) {
        let (exits, rx) = mpsc::unbounded_channel();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        (
            LocalDriver {
                config,
                known: Arc::new(Mutex::new(HashMap::new())),
                exits,
                http,
                starts: StartBudget::new(),
            },
            rx,
        )
    }

    /// The workspace's bucket as the instance opens it: the organization's
    /// (`coditect.io/bucket` annotation), with `file:relative` resolved against the data
    /// dir.
    pub fn bucket_url(&self, ws: &Workspace) -> String {
        let raw = ws
            .metadata
            .annotations
            .get(crate::reconcile::BUCKET_ANNOTATION)
            .cloned()
            .unwrap_or_else(coditect_specs::defaults::bucket);
        self.resolve_bucket(raw)
    }

    /// The bucket's hot mirror as the instance opens it (`coditect.io/mirror`), resolved
    /// like [`LocalDriver::bucket_url`]; none when the organization has no mirror.
    pub fn mirror_url(&self, ws: &Workspace) -> Option<String> {
        ws.metadata
            .annotations
            .get(crate::reconcile::MIRROR_ANNOTATION)
            .cloned()
            .map(|raw| self.resolve_bucket(raw))
    }

    fn resolve_bucket(&self, raw: String) -> String {
        match raw.strip_prefix("file:") {
            Some(rest) if !rest.starts_with("//") => {
                let path = self.config.data_dir.join(rest);
                let path = std::path::absolute(&path).unwrap_or(path);
                format!("file://{}", path.display())
            }
            _ => raw,
        }
    }

    /// Deletes the workspace's objects from its bucket.
    async fn purge_bucket(&self, key: &ObjectKey, ws: &Workspace) -> Result<(), DriverError> {
        let failed = |reason: String| DriverError::StopFailed {
            workspace: key.to_string(),
            reason,
        };
        let bucket = Bucket::open(&self.bucket_url(ws))
            .await
            .map_err(|e| failed(format!("purge the bucket: {e}")))?;
        let m = &ws.metadata;
        let prefix = Layout::relative(
            m.organization.as_deref().unwrap_or_default(),
            m.team.as_deref().unwrap_or_default(),
            &ws.spec.owner,
            &m.name,
        );
        let prefix = format!("{}/", prefix.display());
        let objects = bucket
            .list(&prefix)
            .await
            .map_err(|e| failed(format!("purge the bucket: {e}")))?;
        for o in objects {
            bucket
                .delete(&o.name)
                .await
                .map_err(|e| failed(format!("purge {}: {e}", o.name)))?;
        }
        Ok(())
    }

    /// Where instances keep their folders.
    pub fn workspaces_root(&self) -> PathBuf {
        self.config.data_dir.join("workspaces")
    }

    fn layout(&self, ws: &Workspace) -> Layout {
        let m = &ws.metadata;
        Layout::new(
            &self.workspaces_root(),
            m.organization.as_deref().unwrap_or_default(),
            m.team.as_deref().unwrap_or_default(),
            &ws.spec.owner,
            &m.name,
        )
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Known>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn instance(&self, k: &Known, ws: &Workspace) -> Option<Instance> {
        let status =
            super::instance_status(&self.http, &k.endpoint, &k.token, &ws.metadata.name).await?;
        Some(Instance::from_status(
            k.endpoint.clone(),
            Some(k.pid),
            &status,
            Some(self.bucket_url(ws)),
            self.mirror_url(ws),
        ))
    }

    /// Reads `runtime.json` and the token of a folder.
    /// Where the spec an instance is started with is written.
    fn spec_path(&self, ws: &Workspace) -> PathBuf {
        self.config
            .data_dir
            .join("specs")
            .join(ws.metadata.organization.as_deref().unwrap_or_default())
            .join(format!("{}.yaml", ws.metadata.name))
    }

    fn discover(&self, folder: &Path) -> Option<Known> {
        let text = std::fs::read_to_string(folder.join("runtime.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        let token = std::fs::read_to_string(folder.join("api-token"))
            .ok()?
            .trim()
            .to_string();
        Some(Known {
            pid: u32::try_from(v["pid"].as_u64()?).ok()?,
            endpoint: format!("http://{}", v["addr"].as_str()?),
            token,
        })
    }

    async fn start(&self, key: &ObjectKey, ws: &Workspace) -> Result<Instance, DriverError> {
        // The budget is held until the instance answers: its start-up work is done then.
        let _budget = self.starts.acquire().await;
        let name = ws.metadata.name.clone();
        let fail = |reason: String| DriverError::StartFailed {
            workspace: key.to_string(),
            reason,
        };
        let org = ws.metadata.organization.clone().unwrap_or_default();
        let spec_path = self.spec_path(ws);
        let log_path = self
            .config
            .data_dir
            .join("logs")
            .join(format!("{org}-{name}.log"));
        for dir in [spec_path.parent(), log_path.parent()]
            .into_iter()
            .flatten()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| DriverError::Io(format!("create {}: {e}", dir.display())))?;
        }
        let yaml = serde_yaml::to_string(&Resource::Workspace(ws.clone()))
            .map_err(|e| fail(e.to_string()))?;
        std::fs::write(&spec_path, yaml)
            .map_err(|e| DriverError::Io(format!("write {}: {e}", spec_path.display())))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| DriverError::Io(format!("open {}: {e}", log_path.display())))?;
        let mut child = tokio::process::Command::new(&self.config.runtime_command)
            .arg("workspace-runtime")
            .arg("--spec")
            .arg(&spec_path)
            .arg("--root")
            .arg(self.workspaces_root())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--bucket")
            .arg(self.bucket_url(ws))
            .args(
                self.mirror_url(ws)
                    .map(|m| ["--mirror".to_string(), m])
                    .into_iter()
                    .flatten(),
            )
            .env(
                "CODITECT_SECRETS_DIR",
                std::env::var_os("CODITECT_SECRETS_DIR")
                    .unwrap_or_else(|| self.config.data_dir.join("secrets").into_os_string()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| {
                fail(format!(
                    "spawn {}: {e}",
                    self.config.runtime_command.display()
                ))
            })?;
        let pid = child.id().unwrap_or_default();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| fail("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_TIMEOUT, lines.next_line()).await;
        let line = match ready {
            Ok(Ok(Some(line))) => line,
            other => {
                let _ = child.start_kill();
                let status = child
                    .wait()
                    .await
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                let why = match other {
                    Err(_) => format!("no ready line within {READY_TIMEOUT:?}"),
                    _ => format!("exited ({status})"),
                };
                return Err(fail(format!(
                    "{why}; last log lines:\n{}",
                    tail(&log_path, 8)
                )));
            }
        };
        let ready: Value = serde_json::from_str(&line)
            .map_err(|e| fail(format!("bad ready line {line:?}: {e}")))?;
        let endpoint = format!("http://{}", ready["addr"].as_str().unwrap_or_default());
        let folder = PathBuf::from(ready["root"].as_str().unwrap_or_default());
        let token = std::fs::read_to_string(folder.join("api-token"))
            .map_err(|e| fail(format!("read api token: {e}")))?;
        let known = Known {
            pid,
            endpoint,
            token: token.trim().to_string(),
        };
        self.known().insert(key.clone(), known.clone());
        // Report the exit, whenever it comes, unless the driver stopped it on purpose
        // (then it is no longer the known instance of its workspace).
        let (exits, key2, known_map) = (self.exits.clone(), key.clone(), self.known.clone());
        tokio::spawn(async move {
            let _ = child.wait().await;
            let current = known_map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key2)
                .map(|k| k.pid);
            if current == Some(pid) {
                let _ = exits.send(key2);
            }
        });
        tracing::info!(workspace = %key, pid, endpoint = %known.endpoint, "instance started");
        self.instance(&known, ws)
            .await
            .ok_or_else(|| fail("started but does not answer /v1/status".into()))
    }

    /// SIGTERM, then wait for the process to go (SIGKILL after [`STOP_TIMEOUT`]).
    async fn terminate(&self, key: &ObjectKey, pid: u32) -> Result<(), DriverError> {
        let target = Pid::from_raw(i32::try_from(pid).unwrap_or(0));
        if pid == 0 || kill(target, Signal::SIGTERM).is_err() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        while alive(pid) {
            if tokio::time::Instant::now() > deadline {
                tracing::warn!(workspace = %key, pid, "instance ignored SIGTERM; killing it");
                let _ = kill(target, Signal::SIGKILL);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

/// Whether `pid` is a live `workspace-runtime` started with `spec` (a pid in a stale
/// `runtime.json` may since belong to another process).
fn serves(pid: u32, spec: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    alive(pid)
        && cmdline.contains("workspace-runtime")
        && cmdline.contains(&spec.display().to_string())
}

/// Whether a process runs (zombies count as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Bytes of the files under `dir`.
fn folder_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

impl Driver for LocalDriver {
    async fn free_disk(&self, key: &ObjectKey, ws: &Workspace) -> DiskRelease {
        let layout = self.layout(ws);
        let root = layout.root().to_path_buf();
        if !root.exists() {
            return DiskRelease::AlreadyFree;
        }
        if self.known().contains_key(key) || self.discover(&root).is_some() {
            return DiskRelease::Kept("an instance still runs on the folder".into());
        }
        let seal = match coditect_runtime::sync::seal::read(&layout.seal_file()) {
            Ok(s) => s,
            Err(e) => return DiskRelease::Kept(e.to_string()),
        };
        let bucket = match Bucket::open(&self.bucket_url(ws)).await {
            Ok(b) => b,
            Err(e) => return DiskRelease::Kept(format!("the bucket cannot be opened: {e}")),
        };
        let m = &ws.metadata;
        let target = coditect_runtime::sync::replicator::SyncTarget {
            bucket,
            prefix: Layout::relative(
                m.organization.as_deref().unwrap_or_default(),
                m.team.as_deref().unwrap_or_default(),
                &ws.spec.owner,
                &m.name,
            )
            .display()
            .to_string(),
        };
        let objects = match coditect_runtime::sync::seal::verify(&target, &seal).await {
            Ok(n) => n,
            Err(e) => return DiskRelease::Kept(e.to_string()),
        };
        let bytes = folder_bytes(&root);
        // Renamed away first (atomic), then deleted: a delete that stops halfway must never
        // leave a folder that looks like a workspace (the next start would open it instead
        // of restoring). A trash left by a crash is removed on the next free.
        let trash = root.with_file_name(format!(
            ".freeing-{}",
            root.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().to_string())
        ));
        if trash.exists() {
            let _ = tokio::fs::remove_dir_all(&trash).await;
        }
        if let Err(e) = tokio::fs::rename(&root, &trash).await {
            return DiskRelease::Kept(format!("move {} aside: {e}", root.display()));
        }
        if let Err(e) = tokio::fs::remove_dir_all(&trash).await {
            tracing::warn!(workspace = %key, error = %e, trash = %trash.display(), "freed folder not wholly deleted; removed on the next free");
        }
        tracing::info!(workspace = %key, objects, bytes, "bucket copy verified; local disk freed");
        DiskRelease::Freed { objects, bytes }
    }

    async fn observe(&self, key: &ObjectKey, ws: &Workspace) -> Option<Instance> {
        let cached = self.known().get(key).cloned();
        if let Some(k) = cached {
            if let Some(i) = self.instance(&k, ws).await {
                return Some(i);
            }
            self.known().remove(key);
        }
        let k = self.discover(self.layout(ws).root())?;
        let instance = self.instance(&k, ws).await?;
        tracing::info!(workspace = %key, pid = k.pid, "adopted a running instance");
        self.known().insert(key.clone(), k);
        Some(instance)
    }

    async fn ensure(
        &self,
        key: &ObjectKey,
        ws: &Workspace,
        hash: &str,
    ) -> Result<Instance, DriverError> {
        match self.observe(key, ws).await {
            Some(i) if i.spec_hash == hash => Ok(i),
            Some(old) => {
                tracing::info!(workspace = %key, from = %old.spec_hash, to = %hash, "rolling instance to a new spec");
                self.known().remove(key);
                if let Some(pid) = old.pid {
                    self.terminate(key, pid).await?;
                }
                self.start(key, ws).await
            }
            None => self.start(key, ws).await,
        }
    }

    async fn stop(&self, key: &ObjectKey, ws: &Workspace, purge: bool) -> Result<(), DriverError> {
        // The pid is taken from what is known or from the folder, not from an answer: an
        // instance too busy to answer /v1/status in time must still be stopped.
        let folder = self.layout(ws).root().to_path_buf();
        let known = self
            .known()
            .remove(key)
            .or_else(|| self.discover(&folder))
            .filter(|k| serves(k.pid, &self.spec_path(ws)));
        if let Some(k) = known {
            self.terminate(key, k.pid).await?;
        }
        if purge {
            if folder.exists() {
                std::fs::remove_dir_all(&folder).map_err(|e| DriverError::StopFailed {
                    workspace: key.to_string(),
                    reason: format!("purge {}: {e}", folder.display()),
                })?;
            }
            // The bucket's copy too, or a workspace created again under the name would
            // restore the purged one.
            self.purge_bucket(key, ws).await?;
        }
        Ok(())
    }

    async fn reap_orphans(&self, known: &[ObjectKey]) -> Vec<ObjectKey> {
        let mut reaped = Vec::new();
        let root = self.workspaces_root().join("organizations");
        for folder in workspace_folders(&root) {
            // organizations/{org}/teams/{team}/users/{user}/workspaces/{ws}
            let parts: Vec<String> = folder
                .strip_prefix(&root)
                .map(|p| p.iter().map(|s| s.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let (Some(org), Some(name)) = (parts.first(), parts.get(6)) else {
                continue;
            };
            let key = ObjectKey {
                kind: Kind::Workspace,
                organization: Some(org.clone()),
                name: name.clone(),
            };
            if known.contains(&key) {
                continue;
            }
            let Some(k) = self.discover(&folder) else {
                continue;
            };
            if super::instance_status(&self.http, &k.endpoint, &k.token, name)
                .await
                .is_some()
            {
                tracing::info!(workspace = %key, pid = k.pid, "stopping orphaned instance");
                let _ = self.terminate(&key, k.pid).await;
                reaped.push(key);
            }
        }
        reaped
    }
}

/// Every `organizations/*/teams/*/users/*/workspaces/*` folder under `root`.
fn workspace_folders(root: &Path) -> Vec<PathBuf> {
    let mut level = vec![root.to_path_buf()];
    for step in ["", "teams", "", "users", "", "workspaces", ""] {
        let mut next = Vec::new();
        for dir in level {
            if step.is_empty() {
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    next.extend(
                        entries
                            .filter_map(|e| e.ok().map(|e| e.path()))
                            .filter(|p| p.is_dir()),
                    );
                }
            } else {
                let p = dir.join(step);
                if p.is_dir() {
                    next.push(p);
                }
            }
        }
        level = next;
    }
    level
}
