//! The system under test: a control plane (one already running, or one started here with
//! `--embedded`) and the workspaces this run creates on it. Each run uses fresh workspace
//! names, so startup is measured from nothing, and removes them at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coditect_control_plane::client::{Client, ClientError};
use coditect_control_plane::up::{ControlPlane, UpOptions};
use coditect_specs::{Kind, ObjectKey, Resource};
use serde_json::json;

use crate::LoadtestError;
use crate::recorder::Recorder;

/// The organization every load-test workspace belongs to.
pub const ORG: &str = "loadtest";
/// Agents per workspace (offline provider).
pub const AGENTS: usize = 4;

/// One workspace under test.
#[derive(Debug, Clone)]
pub struct Ws {
    /// Its name.
    pub name: String,
    /// Its owner (names its folder).
    pub owner: String,
    /// The control-plane token requests through the gateway carry (the gateway
    /// presents the instance's own).
    pub token: String,
}

/// Where the load goes.
#[derive(Debug)]
pub struct Target {
    /// `http://host:port` of the control plane (API and gateway).
    pub server: String,
    /// The control plane client.
    pub client: Client,
    /// The control-plane token of the run (the embedded control plane's admin).
    pub token: String,
    /// For workspace requests through the gateway.
    pub http: reqwest::Client,
    /// The control plane's data directory (tokens, pids).
    pub data_dir: PathBuf,
    /// The workspaces of this run.
    pub workspaces: Vec<Ws>,
    /// An embedded control plane and its temp folder; taken by [`Target::finish`].
    embedded: std::sync::Mutex<Option<(ControlPlane, Option<tempfile::TempDir>)>>,
}

fn objects(text: &str) -> Vec<Resource> {
    let (docs, diags) = coditect_specs::parse_str("loadtest.yaml", Path::new("."), text);
    debug_assert!(diags.is_empty(), "{diags:?}");
    docs.into_iter().map(|d| d.resource).collect()
}

/// `n` workspaces named `{prefix}-{i}` (owner `u{i}`, four offline agents), and their
/// (name, owner).
fn workspaces(prefix: &str, n: usize) -> (Vec<Resource>, Vec<(String, String)>) {
    let agents: Vec<String> = (0..AGENTS)
        .map(|a| format!("{{name: a{a}, provider: offline}}"))
        .collect();
    let mut objs = Vec::new();
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        let owner = format!("u{i}");
        objs.extend(objects(&format!(
            "apiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {{name: {name}, organization: {ORG}, team: lt}}\nspec: {{owner: {owner}, agents: [{}]}}\n",
            agents.join(", ")
        )));
        names.push((name, owner));
    }
    (objs, names)
}

/// The key of a workspace of the run.
pub fn key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::Workspace,
        organization: Some(ORG.into()),
        name: name.into(),
    }
}

/// The API path of a workspace of the run.
fn workspace_path(name: &str) -> String {
    format!("/apis/coditect.io/v1/organizations/{ORG}/workspaces/{name}")
}

impl Target {
    /// Connects to `server`, or starts an embedded control plane (in `data_dir`, or a temp
    /// folder) that runs instances with `runtime_command`.
    ///
    /// # Errors
    /// When the control plane cannot be reached or started.
    pub async fn connect(
        server: Option<&str>,
        token: Option<&str>,
        data_dir: Option<&Path>,
        runtime_command: &Path,
    ) -> Result<Self, LoadtestError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| LoadtestError::Setup(e.to_string()))?;
        if let Some(server) = server {
            let data_dir = data_dir.map_or_else(|| PathBuf::from(".coditect"), Path::to_path_buf);
            let token = token
                .ok_or_else(|| {
                    LoadtestError::Setup(format!(
                        "no token for {server}: pass --token, or a config with one"
                    ))
                })?
                .to_string();
            let client = Client::with_token(server, &token)
                .map_err(|e| LoadtestError::Setup(e.to_string()))?;
            client
                .wait_ready(Duration::from_secs(5))
                .await
                .map_err(|e| LoadtestError::Setup(e.to_string()))?;
            return Ok(Target {
                server: server.to_string(),
                client,
                token,
                http,
                data_dir,
                workspaces: Vec::new(),
                embedded: std::sync::Mutex::new(None),
            });
        }
        let temp = match data_dir {
            Some(_) => None,
            None => Some(
                tempfile::Builder::new()
                    .prefix("coditect-loadtest-")
                    .tempdir()
                    .map_err(|e| LoadtestError::Setup(e.to_string()))?,
            ),
        };
        let data_dir = data_dir.map_or_else(
            || {
                temp.as_ref()
                    .map(|t| t.path().to_path_buf())
                    .unwrap_or_default()
            },
            Path::to_path_buf,
        );
        let listen = "127.0.0.1:0"
            .parse()
            .map_err(|_| LoadtestError::Setup("address".into()))?;
        let mut opts = UpOptions::new(listen, data_dir.clone(), runtime_command.to_path_buf());
        opts.resync = Duration::from_secs(30);
        let cp = coditect_control_plane::up::start(opts)
            .await
            .map_err(|e| LoadtestError::Setup(e.to_string()))?;
        let (server, token) = (cp.server.clone(), cp.admin_token.clone());
        Ok(Target {
            client: Client::with_token(&server, &token)
                .map_err(|e| LoadtestError::Setup(e.to_string()))?,
            token,
            server,
            http,
            data_dir,
            workspaces: Vec::new(),
            embedded: std::sync::Mutex::new(Some((cp, temp))),
        })
    }

    /// Creates `n` workspaces in one apply and records each one's apply → Ready time.
    ///
    /// # Errors
    /// When the apply is refused or a workspace does not become Ready within 2 minutes.
    pub async fn create_workspaces(
        &mut self,
        n: usize,
        startup: &Arc<Recorder>,
    ) -> Result<(), LoadtestError> {
        let setup = format!(
            "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {{name: {ORG}}}\nspec: {{quotas: {{maxWorkspaces: 100000, maxAwakeWorkspaces: 100000}}}}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {{name: lt, organization: {ORG}}}\nspec: {{}}\n"
        );
        self.client
            .apply(&objects(&setup), false, None)
            .await
            .map_err(|e| LoadtestError::Setup(e.to_string()))?;
        let (objs, names) = workspaces(&format!("lt-{}", rand::random::<u32>() % 1_000_000), n);
        let t0 = Instant::now();
        self.client
            .apply(&objs, false, None)
            .await
            .map_err(|e| LoadtestError::Setup(e.to_string()))?;
        let waits: Vec<_> = names
            .iter()
            .map(|(name, _)| {
                let (client, k) = (self.client.clone(), key(name));
                tokio::spawn(async move {
                    client
                        .wait_for(&k, "Ready", Duration::from_secs(120))
                        .await
                        .map(|_| Instant::now())
                })
            })
            .collect();
        for w in waits {
            match w.await {
                Ok(Ok(at)) => startup.ok(at.duration_since(t0)),
                _ => startup.failed(),
            }
        }
        for (name, owner) in names {
            self.workspaces.push(Ws {
                name,
                owner,
                token: self.token.clone(),
            });
        }
        Ok(())
    }

    /// Applies `n` more workspaces in one apply and does not wait for them: a mass start
    /// beside the workspaces under load. Their names, to [`Target::remove`] them after.
    ///
    /// # Errors
    /// The control plane refused the apply.
    pub async fn start_more(&self, n: usize) -> Result<Vec<String>, LoadtestError> {
        let (objs, names) =
            workspaces(&format!("lt-more-{}", rand::random::<u32>() % 1_000_000), n);
        self.client
            .apply(&objs, false, None)
            .await
            .map_err(|e| LoadtestError::Setup(e.to_string()))?;
        Ok(names.into_iter().map(|(name, _)| name).collect())
    }

    /// Deletes workspaces [`Target::start_more`] made (purging their data) and waits
    /// until they are gone.
    pub async fn remove(&self, names: &[String]) {
        for name in names {
            let _ = self.client.delete(&key(name), true).await;
        }
        for name in names {
            let _ = self
                .client
                .wait_deleted(&key(name), Duration::from_secs(60))
                .await;
        }
    }

    /// The folder of a workspace of this run.
    pub fn folder(&self, owner: &str, name: &str) -> PathBuf {
        self.data_dir.join(format!(
            "workspaces/organizations/{ORG}/teams/lt/users/{owner}/workspaces/{name}"
        ))
    }

    /// The pid of a workspace's instance, from its `runtime.json`.
    pub fn pid(&self, ws: &Ws) -> Option<u32> {
        let text =
            std::fs::read_to_string(self.folder(&ws.owner, &ws.name).join("runtime.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        u32::try_from(v["pid"].as_u64()?).ok()
    }

    /// `http://server/w/loadtest/{ws}` — the workspace's API through the gateway.
    pub fn base(&self, ws: &Ws) -> String {
        format!("{}/w/{ORG}/{}", self.server, ws.name)
    }

    /// Asks the control plane, as the run's admin, to put a workspace to sleep (the
    /// instance stops after a final sync round; `status.sleep` records the wish at once).
    ///
    /// # Errors
    /// When the control plane refuses or cannot be reached.
    pub async fn request_sleep(&self, ws: &Ws) -> Result<(), ClientError> {
        self.client
            .post_json(&format!("{}/sleep", workspace_path(&ws.name)), &json!({}))
            .await
            .map(|_| ())
    }

    /// Asks the control plane, as the run's admin, to wake a workspace (answered at once;
    /// the instance starts on its local data).
    ///
    /// # Errors
    /// When the control plane refuses or cannot be reached.
    pub async fn request_wake(&self, ws: &Ws) -> Result<(), ClientError> {
        self.client
            .post_json(&format!("{}/wake", workspace_path(&ws.name)), &json!({}))
            .await
            .map(|_| ())
    }

    /// Waits until every workspace of the run is Ready; returns how many are.
    pub async fn all_ready(&self, timeout: Duration) -> usize {
        let waits: Vec<_> = self
            .workspaces
            .iter()
            .map(|ws| {
                let (client, k) = (self.client.clone(), key(&ws.name));
                tokio::spawn(async move { client.wait_for(&k, "Ready", timeout).await.is_ok() })
            })
            .collect();
        let mut ready = 0;
        for w in waits {
            if matches!(w.await, Ok(true)) {
                ready += 1;
            }
        }
        ready
    }

    /// Deletes the run's workspaces (purging their data) and stops an embedded control
    /// plane. It takes `&self`: a scenario's stray task may still hold the target, and the
    /// instances must stop all the same.
    pub async fn finish(&self) {
        for ws in &self.workspaces {
            let _ = self.client.delete(&key(&ws.name), true).await;
        }
        let embedded = self
            .embedded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((cp, _temp)) = embedded {
            cp.shutdown().await;
        }
    }
}
