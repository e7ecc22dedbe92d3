//! `coditect gateway`: the gateway in the cluster. The same proxying as the embedded
//! control plane's ([`crate::gateway`]), with Kubernetes as the registry:
//!
//! - **Who** — the caller's bearer token is any token the API server accepts (a
//!   ServiceAccount token from `kubectl create token`, the OIDC tokens the cluster trusts),
//!   checked with a `TokenReview`.
//! - **May they** — Kubernetes RBAC, asked with a `SubjectAccessReview`: a read needs
//!   `get` on `workspaces.coditect.io`, everything else the custom verb `use` (as
//!   PodSecurityPolicies had `use`), in the organization's namespace. A caller who may not
//!   `get` the workspace is told it is not found. Allowed decisions are remembered for
//!   [`DECISION_TTL`] (a revoked role takes that long to bite); RBAC refusals are not, so
//!   a role just granted works at once. A token the API server rejects is rejected
//!   without asking again for [`REJECTED_TTL`].
//! - **Where** — the workspace's pod behind its headless Service, at the address the
//!   gateway computes from the workspace's name and namespace; a `status.endpoint` that
//!   says otherwise is not followed (whoever may write a status could otherwise send the
//!   gateway, and the instance's token, anywhere). Running or not comes from a watch
//!   cache; the instance's token from its Secret, read again when the instance refuses it.
//! - **Wake on connect** — the wake wish written to the Workspace's status (the operator
//!   is nudged by the flip), the request held until the status says it serves, an Event
//!   on the Workspace naming who woke it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use coditect_specs::{Kind, ObjectKey, Workspace};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::store::KubeStore;
use super::tokens::SecretTokens;
use super::{GROUP, mapping};
use crate::access::Verb;
use crate::access::http::bearer;
use crate::gateway::Registry;
use crate::gateway::wake::{until_serving, wake_if_asleep};
use crate::resource_store::ResourceStore;

/// How long an allowed decision (this token may do this to this workspace) is reused.
pub const DECISION_TTL: Duration = Duration::from_secs(10);

/// Decisions remembered at most; beyond, the memory starts again.
const MAX_DECISIONS: usize = 10_000;

/// How long a token the API server rejected is rejected without asking again (a client
/// retrying a bad token in a loop costs one TokenReview per this, not one per request).
pub const REJECTED_TTL: Duration = Duration::from_secs(10);

/// A caller the API server vouched for.
#[derive(Debug, Clone)]
pub struct KubeCaller {
    /// Their user name (`system:serviceaccount:acme:alice`, `alice@example.com`).
    pub user: String,
    uid: Option<String>,
    groups: Vec<String>,
    extra: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

/// The RBAC verb a gateway verb needs on `workspaces.coditect.io`.
fn rbac_verb(verb: Verb) -> &'static str {
    match verb {
        Verb::Read => "get",
        _ => "use",
    }
}

/// Allowed decisions: (the token's SHA-256, RBAC verb, workspace) → when, and who.
type Decisions = HashMap<(String, &'static str, ObjectKey), (Instant, KubeCaller)>;

/// Where a workspace's pod answers.
pub type PodAddress = Arc<dyn Fn(&Workspace) -> String + Send + Sync>;

/// The gateway's registry: Kubernetes.
#[derive(Clone)]
pub struct ClusterGateway {
    client: kube::Client,
    store: Arc<KubeStore>,
    tokens: Arc<SecretTokens>,
    http: reqwest::Client,
    decisions: Arc<Mutex<Decisions>>,
    /// Tokens the API server rejected (by SHA-256): when, and its words.
    rejected: Arc<Mutex<HashMap<String, (Instant, String)>>>,
    pods: PodAddress,
}

impl std::fmt::Debug for ClusterGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterGateway").finish_non_exhaustive()
    }
}

/// The gateway's refusal, with the `Bearer` challenge on a 401.
fn refuse(status: StatusCode, error: &str, reason: String) -> Response {
    let mut r = crate::gateway::refuse(status, error, reason);
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

fn unavailable(what: &str, e: &kube::Error) -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "auth_unavailable",
        format!("the Kubernetes API did not answer the {what}: {e}"),
    )
}

impl ClusterGateway {
    /// A gateway over `client`, reading workspaces from `store` (fed by a watch).
    pub fn new(client: kube::Client, store: Arc<KubeStore>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        ClusterGateway {
            tokens: Arc::new(SecretTokens::new(client.clone())),
            client,
            store,
            http,
            decisions: Arc::new(Mutex::new(HashMap::new())),
            rejected: Arc::new(Mutex::new(HashMap::new())),
            pods: Arc::new(super::workload::endpoint),
        }
    }

    /// The same gateway with pods found by `pods` (tests put them on loopback).
    #[must_use]
    pub fn with_pod_address(mut self, pods: PodAddress) -> Self {
        self.pods = pods;
        self
    }

    fn decisions(&self) -> std::sync::MutexGuard<'_, Decisions> {
        self.decisions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rejected(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, String)>> {
        self.rejected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Who holds `token` (whose SHA-256 is `held`), by a TokenReview; a token rejected
    /// less than [`REJECTED_TTL`] ago is rejected again without asking.
    async fn review_token(&self, token: &str, held: &str) -> Result<KubeCaller, Response> {
        let rejected = |why: String| refuse(StatusCode::UNAUTHORIZED, "unauthorized", why);
        if let Some((_, why)) = self
            .rejected()
            .get(held)
            .filter(|(at, _)| at.elapsed() < REJECTED_TTL)
        {
            return Err(rejected(why.clone()));
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..Default::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| unavailable("TokenReview", &e))?;
        let status = answer.status.unwrap_or_default();
        let user = status.user.unwrap_or_default();
        match (status.authenticated, user.username) {
            (Some(true), Some(name)) => Ok(KubeCaller {
                user: name,
                uid: user.uid,
                groups: user.groups.unwrap_or_default(),
                extra: user.extra,
            }),
            _ => {
                let why = format!(
                    "the Kubernetes API does not accept this token{}",
                    status.error.map(|e| format!(": {e}")).unwrap_or_default()
                );
                let mut remembered = self.rejected();
                if remembered.len() >= MAX_DECISIONS {
                    remembered.clear();
                }
                remembered.insert(held.to_string(), (Instant::now(), why.clone()));
                Err(rejected(why))
            }
        }
    }

    /// Whether `who` may `verb` the Workspace `key`, by a SubjectAccessReview; the
    /// authorizer's reason when not.
    async fn may(
        &self,
        who: &KubeCaller,
        verb: &str,
        key: &ObjectKey,
    ) -> Result<Result<(), String>, Response> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(who.user.clone()),
                uid: who.uid.clone(),
                groups: Some(who.groups.clone()),
                extra: who.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(GROUP.into()),
                    resource: Some(Kind::Workspace.plural().into()),
                    verb: Some(verb.into()),
                    namespace: key.organization.as_deref().map(mapping::namespace),
                    name: Some(key.name.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| unavailable("SubjectAccessReview", &e))?;
        let status = answer.status.unwrap_or_default();
        if status.allowed && !status.denied.unwrap_or(false) {
            Ok(Ok(()))
        } else {
            Ok(Err(status.reason.unwrap_or_default()))
        }
    }
}

impl Registry for ClusterGateway {
    type Store = KubeStore;
    type Caller = KubeCaller;

    fn store(&self) -> &KubeStore {
        &self.store
    }

    fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn admit(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        verb: Verb,
        key: &ObjectKey,
    ) -> Result<KubeCaller, Response> {
        let Some(token) = bearer(headers, query) else {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "no bearer token: send `Authorization: Bearer <token>` with a token the cluster accepts (`kubectl create token <serviceaccount>`, or your OIDC token)".into(),
            ));
        };
        let rbac = rbac_verb(verb);
        let held = hex::encode(Sha256::digest(token.as_bytes()));
        let remembered = (held, rbac, key.clone());
        if let Some((at, who)) = self.decisions().get(&remembered)
            && at.elapsed() < DECISION_TTL
        {
            return Ok(who.clone());
        }
        let who = self.review_token(token, &remembered.0).await?;
        let ns = key
            .organization
            .as_deref()
            .map(mapping::namespace)
            .unwrap_or_default();
        if let Err(why) = self.may(&who, "get", key).await? {
            tracing::debug!(user = %who.user, workspace = %key, %why, "may not get");
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{key} not found"),
            ));
        }
        if rbac != "get"
            && let Err(why) = self.may(&who, rbac, key).await?
        {
            let permission = format!("{rbac} workspaces.{GROUP}");
            return Err((
                StatusCode::FORBIDDEN,
                Json(json!({
                    "error": "forbidden",
                    "reason": format!(
                        "{} may not {rbac} workspaces.{GROUP} \"{}\" in namespace \"{ns}\"{}: grant a Role with apiGroups [\"{GROUP}\"], resources [\"workspaces\"], verbs [\"{rbac}\"]",
                        who.user,
                        key.name,
                        if why.is_empty() { String::new() } else { format!(" ({why})") },
                    ),
                    "permission": permission,
                })),
            )
                .into_response());
        }
        let mut decisions = self.decisions();
        if decisions.len() >= MAX_DECISIONS {
            decisions.clear();
        }
        decisions.insert(remembered, (Instant::now(), who.clone()));
        Ok(who)
    }

    async fn token(&self, _key: &ObjectKey, ws: &Workspace) -> Option<String> {
        self.tokens.load(ws).await
    }

    fn token_refused(&self, key: &ObjectKey) {
        self.tokens.forget(key);
    }

    fn address(&self, ws: &Workspace, recorded: String) -> Result<String, String> {
        let pod = (self.pods)(ws);
        if recorded == pod {
            Ok(pod)
        } else {
            tracing::warn!(workspace = %ws.metadata.name, %recorded, %pod, "status.endpoint is not the workspace's pod; not followed");
            Err(format!(
                "the status of {} names {recorded}, not its pod {pod}: not followed",
                ws.metadata.name
            ))
        }
    }

    async fn wake(&self, who: &KubeCaller, key: &ObjectKey) -> Result<(), Response> {
        // The cache may be a moment behind the operator's last status write: a stale
        // write is refused (409); the workspace is read again and the wish written on
        // what was read.
        let mut attempts = 0;
        loop {
            match wake_if_asleep(&*self.store, key).await {
                Ok(true) => {
                    tracing::info!(workspace = %key, user = %who.user, "waking on connect");
                    self.store
                        .record_event(
                            key,
                            "Normal",
                            "WokenOnConnect",
                            &format!("a request through the gateway by {}", who.user),
                        )
                        .await;
                    break;
                }
                Ok(false) => break,
                Err(refused) if refused.status() == StatusCode::CONFLICT && attempts < 5 => {
                    attempts += 1;
                    if let Err(e) = self.store.refresh(key).await {
                        return Err(refuse(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "unavailable",
                            e.to_string(),
                        ));
                    }
                }
                Err(refused) => return Err(refused),
            }
        }
        until_serving(&*self.store, key).await
    }
}

/// How the gateway runs.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Where it listens (`/w/…`, `/healthz`, `/readyz`).
    pub listen: SocketAddr,
    /// This replica's name in Events (its pod name).
    pub identity: String,
}

/// Why the gateway stopped.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No Kubernetes client could be configured.
    #[error("cannot reach Kubernetes: {0}")]
    Client(String),
    /// The address could not be bound, or serving failed.
    #[error("serve on {addr}: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The gateway's router over `gateway`: `/healthz`, `/readyz` (once the first list of
/// Workspaces is in), and `/w/{org}/{workspace}/…`.
pub fn router(gateway: ClusterGateway, listed: tokio::sync::watch::Receiver<bool>) -> axum::Router {
    let ready = move || {
        let listed = listed.clone();
        async move {
            if *listed.borrow() {
                Json(json!({"ready": true})).into_response()
            } else {
                refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_ready",
                    "still listing the Workspaces".into(),
                )
            }
        }
    };
    crate::gateway::routes::<ClusterGateway>()
        .route("/healthz", get(|| async { Json(json!({"ok": true})) }))
        .route("/readyz", get(ready))
        .with_state(gateway)
}

/// Runs the gateway until `shutdown` resolves; requests in flight are finished.
///
/// # Errors
/// No client, or the address taken.
pub async fn run(
    opts: GatewayOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| GatewayError::Client(e.to_string()))?;
    let store = Arc::new(KubeStore::for_gateway(
        client.clone(),
        Some(opts.identity.clone()),
    ));
    let (listed_tx, listed) = tokio::sync::watch::channel(false);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let s = store.clone();
    let watch = tokio::spawn(async move { s.watch(Kind::Workspace, tx).await });
    tokio::spawn(async move {
        if rx.await.is_ok() {
            let _ = listed_tx.send(true);
        }
    });
    let app = router(ClusterGateway::new(client, store), listed);
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| GatewayError::Serve {
            addr: opts.listen,
            source,
        })?;
    tracing::info!(listen = %opts.listen, "gateway serving");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    watch.abort();
    served.map_err(|source| GatewayError::Serve {
        addr: opts.listen,
        source,
    })
}
