//! Where a user's tree goes: a folder (`coditect migrate` offline, and tests), or a live
//! workspace instance through its own API — the way a migration writes into a workspace
//! agents may already use: under an exclusive lock on the whole tree, each write carrying
//! its fencing token, each one a `file_written` event in the workspace's log. Copy,
//! verification and the reverse path of a rollback are written once, against
//! [`Destination`].

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::copy::{file_sha256, inside, tree};
use crate::error::MigrateError;

/// The v2 side of a user's migration.
pub trait Destination: Send + Sync {
    /// Every file's SHA-256, by tree path (`src/main.rs`).
    fn hashes(&self)
    -> impl Future<Output = Result<BTreeMap<String, String>, MigrateError>> + Send;

    /// Puts `bytes` at `path`, whole or not at all.
    fn write(
        &self,
        path: &str,
        bytes: Bytes,
    ) -> impl Future<Output = Result<(), MigrateError>> + Send;

    /// The bytes at `path`, `None` when there is no such file.
    fn read(&self, path: &str) -> impl Future<Output = Result<Option<Bytes>, MigrateError>> + Send;
}

/// A folder on this machine.
#[derive(Debug, Clone)]
pub struct Folder(pub PathBuf);

impl Folder {
    fn place(&self, path: &str) -> Result<PathBuf, MigrateError> {
        inside(&self.0, path).ok_or_else(|| {
            MigrateError::Destination(format!("{path}: the path leaves the workspace's folder"))
        })
    }
}

impl Destination for Folder {
    async fn hashes(&self) -> Result<BTreeMap<String, String>, MigrateError> {
        let root = self.0.clone();
        tokio::task::spawn_blocking(move || {
            tree(&root)
                .into_iter()
                .filter_map(|p| {
                    let sha = file_sha256(&root.join(&p))?;
                    Some((p, sha))
                })
                .collect()
        })
        .await
        .map_err(|e| MigrateError::Destination(e.to_string()))
    }

    async fn write(&self, path: &str, bytes: Bytes) -> Result<(), MigrateError> {
        let target = self.place(path)?;
        tokio::task::spawn_blocking(move || write_atomically(&target, &bytes))
            .await
            .map_err(|e| MigrateError::Destination(e.to_string()))?
            .map_err(|e| MigrateError::Destination(format!("{path}: {e}")))
    }

    async fn read(&self, path: &str) -> Result<Option<Bytes>, MigrateError> {
        let target = self.place(path)?;
        match std::fs::read(&target) {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(MigrateError::Destination(format!("{path}: {e}"))),
        }
    }
}

/// Writes `bytes` at `target` through a temporary file beside it, fsynced, then renamed.
fn write_atomically(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = target.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.migrating"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, target)
}

/// Who the migration is in a workspace's log and lock table.
pub const MIGRATION_AGENT: &str = "migration";

/// How long the migration's lock on the tree lasts unless renewed by the next write.
const LEASE_MS: u64 = 120_000;

/// A live workspace instance, through its API.
#[derive(Debug)]
pub struct Instance {
    http: reqwest::Client,
    base: reqwest::Url,
    token: String,
    /// The fencing token of the migration's lock on `.`, once taken.
    lease: tokio::sync::Mutex<Option<u64>>,
}

fn http_error(what: &str, e: impl std::fmt::Display) -> MigrateError {
    MigrateError::Destination(format!("{what}: {e}"))
}

impl Instance {
    /// The instance answering at `endpoint` (`http://127.0.0.1:PORT`) with `token`.
    ///
    /// # Errors
    /// The endpoint is not a URL.
    pub fn new(http: reqwest::Client, endpoint: &str, token: String) -> Result<Self, MigrateError> {
        let base = reqwest::Url::parse(endpoint).map_err(|e| http_error(endpoint, e))?;
        Ok(Instance {
            http,
            base,
            token,
            lease: tokio::sync::Mutex::new(None),
        })
    }

    fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            // Each segment is percent-encoded: unicode and spaces come over as they are.
            path.extend(segments);
        }
        url
    }

    fn file_url(&self, path: &str) -> reqwest::Url {
        let mut segments = vec!["v1", "files"];
        segments.extend(path.split('/'));
        self.url(&segments)
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, MigrateError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| http_error(what, e))?;
        if resp.status().is_success() || resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Err(http_error(what, format!("{status}: {body}")))
    }

    async fn json(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value, MigrateError> {
        let resp = self.send(req, what).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(http_error(what, "404 Not Found"));
        }
        resp.json().await.map_err(|e| http_error(what, e))
    }

    /// The fencing token of the migration's exclusive lock on the whole tree, taken (or
    /// renewed) now.
    async fn fencing_token(&self) -> Result<u64, MigrateError> {
        let mut lease = self.lease.lock().await;
        if let Some(token) = *lease {
            let renewed = self
                .send(
                    self.http
                        .post(self.url(&["v1", "locks", &token.to_string(), "renew"]))
                        .json(&json!({"ttl_ms": LEASE_MS})),
                    "renew the migration's lock",
                )
                .await?;
            if renewed.status().is_success() {
                return Ok(token);
            }
        }
        let granted = self
            .json(
                self.http.post(self.url(&["v1", "locks"])).json(&json!({
                    "path": ".", "mode": "exclusive", "holder": MIGRATION_AGENT,
                    "ttl_ms": LEASE_MS, "wait_ms": 30_000,
                })),
                "lock the workspace's tree",
            )
            .await?;
        let token = granted["token"]
            .as_u64()
            .ok_or_else(|| http_error("lock the workspace's tree", granted.to_string()))?;
        *lease = Some(token);
        Ok(token)
    }

    /// Lets go of the migration's lock, if it holds one.
    ///
    /// # Errors
    /// The instance did not answer.
    pub async fn release(&self) -> Result<(), MigrateError> {
        if let Some(token) = self.lease.lock().await.take() {
            self.send(
                self.http
                    .delete(self.url(&["v1", "locks", &token.to_string()])),
                "release the migration's lock",
            )
            .await?;
        }
        Ok(())
    }

    /// Imports events (`POST /v1/events/import`): `(imported, skipped)`.
    ///
    /// # Errors
    /// The instance refused or did not answer.
    pub async fn import(&self, body: &Value) -> Result<(u64, u64), MigrateError> {
        let v = self
            .json(
                self.http
                    .post(self.url(&["v1", "events", "import"]))
                    .json(body),
                "import the transcripts",
            )
            .await?;
        Ok((
            v["imported"].as_u64().unwrap_or(0),
            v["skipped"].as_u64().unwrap_or(0),
        ))
    }
}

impl Destination for Instance {
    async fn hashes(&self) -> Result<BTreeMap<String, String>, MigrateError> {
        let mut url = self.url(&["v1", "tree"]);
        url.set_query(Some("sha256=true"));
        let v = self
            .json(self.http.get(url), "list the workspace's tree")
            .await?;
        if v["truncated"].as_bool() == Some(true) {
            return Err(MigrateError::Destination(
                "the workspace's tree is longer than its API lists (10,000 files)".into(),
            ));
        }
        Ok(v["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                Some((
                    f["path"].as_str()?.to_string(),
                    f["sha256"].as_str()?.to_string(),
                ))
            })
            .collect())
    }

    async fn write(&self, path: &str, bytes: Bytes) -> Result<(), MigrateError> {
        let token = self.fencing_token().await?;
        let resp = self
            .send(
                self.http
                    .put(self.file_url(path))
                    .header("X-Fencing-Token", token.to_string())
                    .header("X-Agent", MIGRATION_AGENT)
                    .body(bytes),
                &format!("write {path}"),
            )
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(http_error(&format!("write {path}"), "404 Not Found"));
        }
        Ok(())
    }

    async fn read(&self, path: &str) -> Result<Option<Bytes>, MigrateError> {
        let what = format!("read {path}");
        let resp = self.send(self.http.get(self.file_url(path)), &what).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        resp.bytes()
            .await
            .map(Some)
            .map_err(|e| http_error(&what, e))
    }
}
