//! Shared helpers for the binary's end-to-end tests: a real `coditect up` on a free port
//! with its own data dir, driven through the CLI, the client and the gateway.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use coditect_control_plane::client::Client;
use coditect_runtime::testkit::ApiClient;
use coditect_specs::{Kind, ObjectKey, Resource};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

pub const MINUTE: Duration = Duration::from_secs(60);

/// A `coditect up` process on a free port with its own data dir.
pub struct ControlPlane {
    pub child: Option<Child>,
    pub server: String,
    pub data: PathBuf,
}

impl ControlPlane {
    pub fn up(data: &Path, files: &[&str]) -> Self {
        Self::up_with(data, files, &[], None)
    }

    /// [`ControlPlane::up`] with these environment variables, its logs (stderr) written to
    /// `log` when given.
    pub fn up_with(data: &Path, files: &[&str], env: &[(&str, &str)], log: Option<&Path>) -> Self {
        Self::up_on("127.0.0.1:0", data, files, env, log)
    }

    /// [`ControlPlane::up_with`] listening on `listen` (to start one again where a page
    /// or client expects it).
    pub fn up_on(
        listen: &str,
        data: &Path,
        files: &[&str],
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coditect"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["-o", "json", "up", "--listen", listen, "--data-dir"])
            .arg(data)
            .envs(env.iter().copied());
        for f in files {
            cmd.args(["-f", f]);
        }
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        ControlPlane {
            child: Some(child),
            server: first["server"].as_str().unwrap().to_string(),
            data: data.to_path_buf(),
        }
    }

    /// A client carrying the cluster admin's token (from the `admin.yaml` `up` wrote).
    pub fn client(&self) -> Client {
        Client::with_token(&self.server, &self.admin_token()).unwrap()
    }

    /// The cluster admin's token, as the CLI finds it.
    pub fn admin_token(&self) -> String {
        let config = coditect_control_plane::client::config::ClientConfig::load(
            &self.data.join("admin.yaml"),
        )
        .unwrap()
        .expect("up wrote admin.yaml");
        config.current().unwrap().token.clone().unwrap()
    }

    /// The CLI, pointed at this control plane with its admin credential.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_coditect"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CODITECT_SERVER", &self.server)
            .env("CODITECT_CONFIG", self.data.join("admin.yaml"))
            .env_remove("CODITECT_TOKEN")
            .env_remove("CODITECT_OUTPUT")
            .args(args)
            .output()
            .unwrap()
    }

    /// alice-main's event stream through the gateway's WebSocket, after `since`.
    pub async fn alice_events(
        &self,
        since: u64,
    ) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
    {
        let base = self.server.replacen("http://", "ws://", 1);
        let url = format!(
            "{base}/w/acme/alice-main/v1/events/ws?since={since}&access_token={}",
            self.admin_token()
        );
        tokio_tungstenite::connect_async(url).await.unwrap().0
    }

    pub fn folder(&self, owner: &str, ws: &str) -> PathBuf {
        self.data.join(format!(
            "workspaces/organizations/acme/teams/platform/users/{owner}/workspaces/{ws}"
        ))
    }

    pub fn pid(&self, owner: &str, ws: &str) -> u32 {
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(self.folder(owner, ws).join("runtime.json")).unwrap(),
        )
        .unwrap();
        v["pid"].as_u64().unwrap() as u32
    }

    /// A client of the control plane's address carrying the admin's token: paths under
    /// `/w/acme/{ws}/` go through the gateway (which presents the workspace's own token).
    pub fn gateway(&self, _owner: &str, _ws: &str) -> ApiClient {
        self.gateway_as(&self.admin_token())
    }

    /// A client of the control plane's address carrying `token`.
    pub fn gateway_as(&self, token: &str) -> ApiClient {
        let addr = self.server.trim_start_matches("http://").parse().unwrap();
        ApiClient::new(addr, Some(token.to_string()))
    }

    pub fn sigkill(&mut self) {
        let mut child = self.child.take().unwrap();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        child.wait().unwrap();
    }

    /// Ctrl-C: stops the instances cleanly.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let _ = child.wait();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
        // Leave no instance behind, whatever the test did.
        for pid in runtime_pids(&self.data) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

/// Pids of live `workspace-runtime` processes serving folders under `data`.
pub fn runtime_pids(data: &Path) -> Vec<u32> {
    let needle = data.join("workspaces").display().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("workspace-runtime") && cmdline.contains(&needle) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

pub fn ws_key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::Workspace,
        organization: Some("acme".into()),
        name: name.into(),
    }
}

pub async fn ready(cp: &ControlPlane, name: &str) -> Resource {
    cp.client()
        .wait_for(&ws_key(name), "Ready", MINUTE)
        .await
        .unwrap()
}

pub fn endpoint(r: &Resource) -> String {
    r.status_json()["endpoint"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Follows workspace `ws` (of `owner`, in acme)'s events through the gateway, reconnecting
/// with the last seq across restarts, until every task in `ids` has finished; returns how
/// each ended (`true`: done).
pub async fn tasks_finished(
    cp: &ControlPlane,
    owner: &str,
    ws: &str,
    ids: &std::collections::HashSet<i64>,
) -> Vec<(i64, bool)> {
    use futures_util::StreamExt;
    let mut since = 0;
    let mut ended = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while seen.len() < ids.len() {
        let _ = owner;
        let url = format!(
            "{}/w/acme/{ws}/v1/events/ws?since={since}&access_token={}",
            cp.server.replacen("http://", "ws://", 1),
            cp.admin_token()
        );
        let Ok((mut stream, _)) = tokio_tungstenite::connect_async(url).await else {
            tokio::task::yield_now().await;
            continue;
        };
        while let Some(Ok(msg)) = stream.next().await {
            let Ok(text) = msg.into_text() else { continue };
            let Ok(e) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            since = e["seq"].as_u64().unwrap_or(since);
            if e["type"] == "task_finished" {
                let id = e["data"]["task"].as_i64().unwrap();
                if ids.contains(&id) && seen.insert(id) {
                    ended.push((id, e["data"]["state"] == "done"));
                }
            }
            if seen.len() == ids.len() {
                break;
            }
        }
    }
    ended
}

/// An embedded control plane on a free port with its data in `data` (instances run the
/// real binary), the admin's client, and a client of its gateway as the admin.
pub async fn embedded(
    data: &Path,
) -> (coditect_control_plane::up::ControlPlane, Client, ApiClient) {
    let mut opts = coditect_control_plane::up::UpOptions::new(
        "127.0.0.1:0".parse().unwrap(),
        data.to_path_buf(),
        env!("CARGO_BIN_EXE_coditect").into(),
    );
    opts.delegated = vec![coditect_migrate::reconciler::MigrationReconciler::factory()];
    let cp = coditect_control_plane::up::start(opts).await.unwrap();
    let admin = Client::with_token(&cp.server, &cp.admin_token).unwrap();
    let gateway = ApiClient::new(
        cp.server.trim_start_matches("http://").parse().unwrap(),
        Some(cp.admin_token.clone()),
    );
    (cp, admin, gateway)
}

/// The objects of a manifest text.
pub fn objects(text: &str) -> Vec<Resource> {
    let (docs, diags) = coditect_specs::parse_str("test.yaml", Path::new("."), text);
    assert!(diags.is_empty(), "{diags:?}");
    docs.into_iter().map(|d| d.resource).collect()
}

/// Asks for `workspace/{name}` of acme to sleep (`action` "sleep") or wake ("wake") and
/// waits for the phase that follows (Asleep, Running).
pub async fn sleep_or_wake(admin: &Client, name: &str, action: &str) {
    admin
        .post_json(
            &format!("/apis/coditect.io/v1/organizations/acme/workspaces/{name}/{action}"),
            &serde_json::json!({}),
        )
        .await
        .unwrap();
    let phase = if action == "sleep" {
        "Asleep"
    } else {
        "Running"
    };
    admin
        .watch_until(&ws_key(name), MINUTE, |r| r.status_json()["phase"] == phase)
        .await
        .unwrap();
}
