//! The client the CLI uses to talk to a control plane, and the config file that says
//! which one and as whom ([`config`]).

pub mod config;

use std::time::Duration;

use coditect_specs::{Kind, ObjectKey, Resource};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::apply::ObjectViolation;
use crate::store::ObjectEvent;

/// The default control plane address.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7420";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the address.
    #[error("no control plane at {server} — start one with `coditect up`")]
    Unreachable {
        /// The address tried.
        server: String,
    },
    /// The control plane took the request but stopped answering before it replied (it
    /// died or restarted): whether the request was carried out cannot be told.
    #[error(
        "the control plane at {server} stopped answering before it replied, so it cannot be told whether the request was carried out; check with `coditect diff -f …` or `coditect get` once it is back"
    )]
    Interrupted {
        /// The address.
        server: String,
    },
    /// The apply was refused; each problem names an object and a field.
    #[error("{reason}")]
    Invalid {
        /// The server's summary.
        reason: String,
        /// The problems.
        violations: Vec<ObjectViolation>,
    },
    /// Not found.
    #[error("{0}")]
    NotFound(String),
    /// No valid credential (401): the message says why and how to get one.
    #[error("{0}")]
    Unauthenticated(String),
    /// The credential's user may not do this (403); the message names the missing
    /// permission.
    #[error("{0}")]
    Forbidden(String),
    /// The client could not be set up (a CA file that cannot be read).
    #[error("{0}")]
    Setup(String),
    /// Refused for a reason the server states (conflict, bad request).
    #[error("{0}")]
    Refused(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    /// Whether it is worth trying again shortly.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }
}

/// What an apply did.
#[derive(Debug, Clone, Deserialize)]
pub struct ApplyResponse {
    /// Per object.
    pub results: Vec<AppliedObject>,
    /// Objects pruned.
    #[serde(default)]
    pub pruned: Vec<String>,
}

/// What happened to one object.
#[derive(Debug, Clone, Deserialize)]
pub struct AppliedObject {
    /// `workspace/acme/alice-main`.
    pub key: String,
    /// created, configured or unchanged.
    pub action: String,
    /// Generation afterwards.
    pub generation: i64,
}

/// A control plane client.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// Whether `condition` is True and the status describes the current generation.
pub fn condition_holds(r: &Resource, condition: &str) -> bool {
    let status = r.status_json();
    let observed = status["observedGeneration"].as_i64();
    let holds = status["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == condition && c["status"] == "True")
    });
    holds && (observed.is_none() || observed == r.metadata().generation)
}

impl Client {
    /// A client for `server` (`http://host:port`) without credentials (only `/healthz`
    /// and `/readyz` answer it).
    pub fn new(server: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Client {
            base: server.trim_end_matches('/').to_string(),
            http,
        }
    }

    /// A client for `server` that sends `token` with every request.
    ///
    /// # Errors
    /// [`ClientError::Setup`] when the token cannot be a header.
    pub fn with_token(server: &str, token: &str) -> Result<Self, ClientError> {
        Self::connect(&config::Connection {
            server: server.to_string(),
            token: Some(token.to_string()),
            certificate_authority: None,
            source: None,
        })
    }

    /// A client for a resolved [`config::Connection`]: its token on every request, its CA
    /// trusted for `https://`.
    ///
    /// # Errors
    /// [`ClientError::Setup`] when the CA file cannot be read or the token cannot be a
    /// header.
    pub fn connect(conn: &config::Connection) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(2));
        if let Some(token) = &conn.token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| {
                    ClientError::Setup("the token holds characters a header cannot".into())
                })?;
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            builder = builder.default_headers(headers);
        }
        if let Some(ca) = &conn.certificate_authority {
            let pem = std::fs::read(ca).map_err(|e| {
                ClientError::Setup(format!("certificate authority {}: {e}", ca.display()))
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientError::Setup(format!("certificate authority {}: {e}", ca.display()))
            })? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Setup(format!("set up the HTTP client: {e}")))?;
        Ok(Client {
            base: conn.server.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// The HTTP client, carrying the credential (for calls this type has no method for).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The server address.
    pub fn server(&self) -> &str {
        &self.base
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                ClientError::Unreachable {
                    server: self.base.clone(),
                }
            } else {
                // Sent, but no answer came back (the connection broke or timed out).
                ClientError::Interrupted {
                    server: self.base.clone(),
                }
            }
        })?;
        let status = resp.status().as_u16();
        let body: Value = match resp.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(_) => {
                return Err(ClientError::Interrupted {
                    server: self.base.clone(),
                });
            }
        };
        let reason = body["reason"].as_str().unwrap_or("").to_string();
        match status {
            200..=299 => Ok(body),
            401 => Err(ClientError::Unauthenticated(format!(
                "{reason} (server {})",
                self.base
            ))),
            403 => Err(ClientError::Forbidden(reason)),
            404 => Err(ClientError::NotFound(reason)),
            429 => Err(ClientError::Refused(reason)),
            422 => Err(ClientError::Invalid {
                reason,
                violations: serde_json::from_value(body["violations"].clone()).unwrap_or_default(),
            }),
            400 | 409 => Err(ClientError::Refused(reason)),
            _ => Err(ClientError::Other(format!("HTTP {status}: {reason}"))),
        }
    }

    /// `GET {server}{path}` with `query`, as JSON.
    ///
    /// # Errors
    /// Transport and server errors.
    pub async fn get_json(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query))
            .await
    }

    /// `POST {server}{path}` with a JSON body.
    ///
    /// # Errors
    /// Transport and server errors.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// `DELETE {server}{path}`.
    ///
    /// # Errors
    /// Transport and server errors.
    pub async fn delete_path(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Applies objects (all or nothing).
    ///
    /// # Errors
    /// [`ClientError::Invalid`] with every problem; others.
    pub async fn apply(
        &self,
        objects: &[Resource],
        dry_run: bool,
        prune: Option<&str>,
    ) -> Result<ApplyResponse, ClientError> {
        let body = json!({"objects": objects, "dryRun": dry_run, "prune": prune});
        let v = self
            .send(
                self.http
                    .post(format!("{}/apis/coditect.io/v1/apply", self.base))
                    .json(&body),
            )
            .await?;
        serde_json::from_value(v).map_err(|e| ClientError::Other(e.to_string()))
    }

    /// Lists a kind, optionally by label selector.
    ///
    /// # Errors
    /// Transport and server errors.
    pub async fn list(
        &self,
        kind: Kind,
        selector: Option<&str>,
    ) -> Result<Vec<Resource>, ClientError> {
        let mut req = self.http.get(format!(
            "{}/apis/coditect.io/v1/{}",
            self.base,
            kind.plural()
        ));
        if let Some(s) = selector {
            req = req.query(&[("labelSelector", s)]);
        }
        let v = self.send(req).await?;
        v["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| Resource::from_trusted_json(i.clone()).ok())
                    .collect()
            })
            .ok_or_else(|| ClientError::Other("list answer without items".into()))
    }

    /// Finds an object by kind and name; `org` narrows teams and workspaces when the same
    /// name exists in several organizations.
    ///
    /// # Errors
    /// [`ClientError::NotFound`], or [`ClientError::Refused`] when the name is ambiguous.
    pub async fn find(
        &self,
        kind: Kind,
        name: &str,
        org: Option<&str>,
    ) -> Result<Resource, ClientError> {
        let matches: Vec<Resource> = self
            .list(kind, None)
            .await?
            .into_iter()
            .filter(|r| {
                r.name() == name
                    && (org.is_none()
                        || kind == Kind::Organization
                        || r.metadata().organization.as_deref() == org)
            })
            .collect();
        match matches.len() {
            0 => Err(ClientError::NotFound(format!(
                "{} {name:?} not found",
                kind.as_str().to_ascii_lowercase()
            ))),
            1 => Ok(matches
                .into_iter()
                .next()
                .ok_or_else(|| ClientError::Other("vanished".into()))?),
            n => Err(ClientError::Refused(format!(
                "{n} {} are named {name:?}; say which organization with --org",
                kind.plural()
            ))),
        }
    }

    fn object_url(&self, key: &ObjectKey) -> String {
        match &key.organization {
            Some(org) if key.kind != Kind::Organization => {
                format!(
                    "{}/apis/coditect.io/v1/organizations/{org}/{}/{}",
                    self.base,
                    key.kind.plural(),
                    key.name
                )
            }
            // Cluster-scoped: `organizations/{name}`, `migrations/{name}`.
            _ => format!(
                "{}/apis/coditect.io/v1/{}/{}",
                self.base,
                key.kind.plural(),
                key.name
            ),
        }
    }

    /// One object by key.
    ///
    /// # Errors
    /// [`ClientError::NotFound`]; others.
    pub async fn get(&self, key: &ObjectKey) -> Result<Resource, ClientError> {
        let v = self.send(self.http.get(self.object_url(key))).await?;
        Resource::from_trusted_json(v).map_err(|e| ClientError::Other(e.to_string()))
    }

    /// Requests deletion (finalizers run on the server); `purge` removes data too.
    ///
    /// # Errors
    /// [`ClientError::NotFound`]; [`ClientError::Refused`] when it still holds objects.
    pub async fn delete(&self, key: &ObjectKey, purge: bool) -> Result<(), ClientError> {
        self.delete_with(key, purge, false).await
    }

    /// [`Client::delete`], or with `dry_run` only checked (access, preconditions), like
    /// kubectl's `--dry-run=server`.
    ///
    /// # Errors
    /// [`ClientError::NotFound`]; [`ClientError::Refused`] when it still holds objects;
    /// [`ClientError::Forbidden`].
    pub async fn delete_with(
        &self,
        key: &ObjectKey,
        purge: bool,
        dry_run: bool,
    ) -> Result<(), ClientError> {
        let mut req = self.http.delete(self.object_url(key));
        if purge {
            req = req.query(&[("purge", "true")]);
        }
        if dry_run {
            req = req.query(&[("dryRun", "true")]);
        }
        self.send(req).await.map(|_| ())
    }

    /// A migration's per-user records (`items`) and the actions not yet acted on
    /// (`wishes`).
    ///
    /// # Errors
    /// [`ClientError::NotFound`]; others.
    pub async fn migration_users(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        self.send(self.http.get(format!(
            "{}/apis/coditect.io/v1/migrations/{name}/users",
            self.base
        )))
        .await
    }

    /// Asks a migration to `action` (`promote`, `cutover`, `rollback`, `complete`) `users`
    /// (all it applies to when empty); `approve` lets users graded Investigate or Poor
    /// be cut over.
    ///
    /// # Errors
    /// [`ClientError::NotFound`] (the migration, or a user it does not have); others.
    pub async fn migration_action(
        &self,
        name: &str,
        action: &str,
        users: &[String],
        approve: bool,
    ) -> Result<serde_json::Value, ClientError> {
        self.send(
            self.http
                .post(format!(
                    "{}/apis/coditect.io/v1/migrations/{name}/actions",
                    self.base
                ))
                .json(&serde_json::json!({"action": action, "users": users, "approve": approve})),
        )
        .await
    }

    /// Recent reconcile events of an object.
    ///
    /// # Errors
    /// Transport and server errors.
    pub async fn events(&self, key: &ObjectKey) -> Result<Vec<ObjectEvent>, ClientError> {
        let mut q = vec![
            ("kind", key.kind.plural().to_string()),
            ("name", key.name.clone()),
        ];
        if let Some(org) = &key.organization {
            q.push(("organization", org.clone()));
        }
        let v = self
            .send(
                self.http
                    .get(format!("{}/apis/coditect.io/v1/events", self.base))
                    .query(&q),
            )
            .await?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        Ok(items
            .into_iter()
            .map(|i| ObjectEvent {
                time: i["time"].as_str().unwrap_or_default().into(),
                event_type: i["type"].as_str().unwrap_or_default().into(),
                reason: i["reason"].as_str().unwrap_or_default().into(),
                message: i["message"].as_str().unwrap_or_default().into(),
            })
            .collect())
    }

    /// Waits until `condition` is True on the object and its status describes the
    /// current generation, or `timeout` passes. Follows the server's watch stream.
    ///
    /// # Errors
    /// [`ClientError::Other`] on timeout, naming the last state seen.
    pub async fn wait_for(
        &self,
        key: &ObjectKey,
        condition: &str,
        timeout: Duration,
    ) -> Result<Resource, ClientError> {
        self.watch_until(key, timeout, |r| condition_holds(r, condition))
            .await
    }

    /// Waits until the object is gone (its finalizers have run), following the watch.
    ///
    /// # Errors
    /// [`ClientError::Other`] when it still exists after `timeout`.
    pub async fn wait_deleted(
        &self,
        key: &ObjectKey,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        match self.watch_until(key, timeout, |_| false).await {
            Err(ClientError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Err(ClientError::Other(format!("{key} is still there"))),
        }
    }

    /// Waits for the control plane's readiness (`/readyz`): every object that existed
    /// when it started has been reconciled once.
    ///
    /// # Errors
    /// [`ClientError::Other`] when it is not ready within `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), ClientError> {
        let ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .to_string();
        self.send(
            self.http
                .get(format!("{}/readyz", self.base))
                .query(&[("wait_ms", ms)]),
        )
        .await
        .map(|_| ())
    }

    /// Follows the object's changes until `check` holds, or `timeout` passes.
    ///
    /// # Errors
    /// [`ClientError::Other`] on timeout, naming the last state seen;
    /// [`ClientError::NotFound`] when the object is deleted meanwhile.
    pub async fn watch_until(
        &self,
        key: &ObjectKey,
        timeout: Duration,
        check: impl Fn(&Resource) -> bool,
    ) -> Result<Resource, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let current = self.get(key).await?;
        if check(&current) {
            return Ok(current);
        }
        let url = format!("{}/apis/coditect.io/v1/{}", self.base, key.kind.plural());
        let rv = current
            .metadata()
            .resource_version
            .clone()
            .unwrap_or_default();
        let mut q = vec![("watch", "true".to_string()), ("resourceVersion", rv)];
        if let Some(org) = &key.organization {
            q.push(("organization", org.clone()));
        }
        let resp =
            self.http
                .get(url)
                .query(&q)
                .send()
                .await
                .map_err(|_| ClientError::Unreachable {
                    server: self.base.clone(),
                })?;
        let mut stream = resp.bytes_stream();
        let mut buf = Vec::new();
        let mut last = current;
        use futures_util::StreamExt;
        loop {
            let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(c))) => c,
                Ok(_) => return Err(ClientError::Other("the watch ended".into())),
                Err(_) => {
                    return Err(ClientError::Other(format!(
                        "timed out after {timeout:?} waiting on {key}; last status: {}",
                        last.status_json()
                    )));
                }
            };
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let Ok(change) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let Ok(r) = Resource::from_trusted_json(change["object"].clone()) else {
                    continue;
                };
                if r.key() != *key {
                    continue;
                }
                if change["type"] == "DELETED" {
                    return Err(ClientError::NotFound(format!("{key} was deleted")));
                }
                if check(&r) {
                    return Ok(r);
                }
                last = r;
            }
        }
    }
}
