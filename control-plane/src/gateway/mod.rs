//! The gateway: one address for every workspace. `/w/{org}/{workspace}/…` is proxied to
//! that workspace's instance, found through the store (the registry is the store), for
//! plain HTTP and for WebSocket.
//!
//! The caller presents their own token (`Authorization: Bearer …`, or `?access_token=…`
//! for browsers' WebSockets). The gateway checks it and the caller's permission (reads —
//! GET, WebSocket tails, `POST /v1/query` — need read, everything else use), then talks
//! to the instance with the instance's own token: users never handle workspace tokens,
//! and the caller's token never reaches the instance.
//!
//! Who the caller is, what they may do and where instances are is a [`Registry`]: the
//! embedded control plane's (its own tokens and roles, [`embedded`]) or the cluster's
//! (Kubernetes TokenReview and RBAC, [`crate::kubernetes::gateway`]). The proxying —
//! holding a request while its workspace wakes or restarts, streaming, WebSocket — is
//! this module's, once.

mod embedded;
pub use embedded::user_proxy;
pub mod users;
pub mod wake;

use std::future::Future;

use axum::body::{Body, to_bytes};
use axum::extract::ws::{Message as AxMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coditect_specs::{Kind, ObjectKey, Resource, Workspace};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as TgMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::access::Verb;
use crate::resource_store::ResourceStore;

/// What the gateway needs of the control plane it serves: who callers are and what they
/// may do, where workspaces are, their instances' tokens, and how to wake one.
pub trait Registry: Clone + Send + Sync + 'static {
    /// Where the workspaces (and their status: endpoint, sleep) are.
    type Store: ResourceStore;
    /// An admitted caller.
    type Caller: Send + Sync;

    /// The store.
    fn store(&self) -> &Self::Store;

    /// The client requests to instances go out on.
    fn http(&self) -> &reqwest::Client;

    /// The caller, when their credential (from `headers` or the `query`) is good and lets
    /// them `verb` the workspace `key`; else the answer to give (401, 403 naming what is
    /// missing, 404 for a workspace they may not see, 429).
    fn admit(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        verb: Verb,
        key: &ObjectKey,
    ) -> impl Future<Output = Result<Self::Caller, Response>> + Send;

    /// The token of `key`'s instance, when it is known.
    fn token(&self, key: &ObjectKey, ws: &Workspace)
    -> impl Future<Output = Option<String>> + Send;

    /// The instance refused the token [`Registry::token`] gave (401): forget it, the
    /// request is sent once more with the token read again.
    fn token_refused(&self, _key: &ObjectKey) {}

    /// Where requests for `ws` go, given the endpoint its status records; `Err` with the
    /// reason when the record is not to be trusted (on Kubernetes, whoever may write a
    /// status could otherwise point the gateway, and the instance's token, anywhere).
    fn address(&self, _ws: &Workspace, recorded: String) -> Result<String, String> {
        Ok(recorded)
    }

    /// Wakes `key` if it sleeps, on `caller`'s behalf, and waits until it serves; else the
    /// answer to give (503 with `Retry-After`).
    fn wake(
        &self,
        caller: &Self::Caller,
        key: &ObjectKey,
    ) -> impl Future<Output = Result<(), Response>> + Send;
}

/// Request bodies up to this size are buffered, so a request that finds its instance
/// restarting can be held and sent again; larger ones (project files) stream through.
const BUFFERED_BODY: u64 = 1 << 20;

/// The largest request body the gateway passes on: the instance's own limit, a project
/// file written with `PUT /v1/files/…` (JSON routes refuse far less, themselves).
const MAX_BODY: u64 = coditect_runtime::api::MAX_FILE_BODY;

/// `/w/{org}/{workspace}` (no trailing path).
pub async fn proxy_root<R: Registry>(
    state: State<R>,
    Path((org, ws)): Path<(String, String)>,
    req: Request,
) -> Response {
    forward(state, org, ws, String::new(), req).await
}

/// `/w/{org}/{workspace}/{*rest}`.
pub async fn proxy<R: Registry>(
    state: State<R>,
    Path((org, ws, rest)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    forward(state, org, ws, rest, req).await
}

pub(crate) fn refuse(status: StatusCode, error: &str, reason: String) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "reason": reason})),
    )
        .into_response()
}

/// The gateway's routes over `registry`'s workspaces.
pub fn routes<R: Registry>() -> axum::Router<R> {
    axum::Router::new()
        .route("/w/{org}/{workspace}", axum::routing::any(proxy_root::<R>))
        .route(
            "/w/{org}/{workspace}/{*rest}",
            axum::routing::any(proxy::<R>),
        )
}

pub(crate) async fn forward<R: Registry>(
    State(s): State<R>,
    org: String,
    ws: String,
    rest: String,
    req: Request,
) -> Response {
    let key = ObjectKey {
        kind: Kind::Workspace,
        organization: Some(org),
        name: ws,
    };
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let verb = verb_of(req.method(), &rest, is_upgrade);
    let who = match s.admit(req.headers(), req.uri().query(), verb, &key).await {
        Ok(who) => who,
        Err(refused) => return refused,
    };
    let path = format!("/{rest}{}", without_token(req.uri().query()));
    if is_upgrade {
        let deadline = tokio::time::Instant::now() + RESTART_GRACE;
        let (endpoint, token) = match instance_by(&s, &who, &key, deadline).await {
            Ok(e) => e,
            Err(refused) => return *refused,
        };
        return websocket(req, format!("{endpoint}{path}"), &token).await;
    }
    // A plain request finds (or wakes) the instance itself, once per attempt.
    http(&s, &who, &key, req, &path).await
}

/// What a request through the gateway does to the workspace: reads need
/// `workspaces.read`, the rest `workspaces.use`.
fn verb_of(method: &axum::http::Method, rest: &str, is_upgrade: bool) -> Verb {
    use axum::http::Method;
    let reads = is_upgrade
        || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || (*method == Method::POST && rest == "v1/query");
    if reads { Verb::Read } else { Verb::Use }
}

/// The query string without the caller's `access_token` (it is not the instance's).
fn without_token(query: Option<&str>) -> String {
    let kept: Vec<&str> = query
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("access_token="))
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
}

/// The workspace's instance address and token, or the answer to give when there is none.
async fn instance<R: Registry>(s: &R, key: &ObjectKey) -> Result<(String, String), Box<Response>> {
    let not_ready = || {
        Box::new(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("{key} has no running instance yet"),
        ))
    };
    let (endpoint, ws) = endpoint(s, key).await?;
    let token = s.token(key, &ws).await.ok_or_else(not_ready)?;
    Ok((endpoint, token))
}

/// [`instance`]; when the workspace has none, it is woken if it sleeps (or awaited while
/// it starts or restarts after a crash) and the request is held until it serves, or
/// until `deadline` for a restart. The common case is one store read.
async fn instance_by<R: Registry>(
    s: &R,
    who: &R::Caller,
    key: &ObjectKey,
    deadline: tokio::time::Instant,
) -> Result<(String, String), Box<Response>> {
    loop {
        match instance(s, key).await {
            Ok(found) => return Ok(found),
            Err(refused)
                if refused.status() == StatusCode::SERVICE_UNAVAILABLE
                    && tokio::time::Instant::now() < deadline =>
            {
                s.wake(who, key).await.map_err(Box::new)?;
                // Serving as the store says. The request goes at once when the driver
                // knows the instance (after a wake it does: it learns the instance before
                // the store is told); else (a restart) it may learn the new token a moment
                // later: look again shortly.
                if let Ok(found) = instance(s, key).await {
                    return Ok(found);
                }
                let mut changes = s.store().subscribe();
                let _ = tokio::time::timeout(std::time::Duration::from_millis(10), changes.recv())
                    .await;
            }
            Err(refused) => return Err(refused),
        }
    }
}

/// The workspace's instance address (and the workspace), or the answer to give when
/// there is none.
async fn endpoint<R: Registry>(
    s: &R,
    key: &ObjectKey,
) -> Result<(String, Workspace), Box<Response>> {
    let refused = |status, error, reason: String| Box::new(refuse(status, error, reason));
    match s.store().get(key).await {
        Ok(Some(Resource::Workspace(w))) => w
            .status
            .as_ref()
            .filter(|st| st.sleep.is_none())
            .and_then(|st| st.endpoint.clone())
            .map(|e| {
                s.address(&w, e)
                    .map(|e| (e, w))
                    .map_err(|why| refused(StatusCode::BAD_GATEWAY, "untrusted_endpoint", why))
            })
            .transpose()?
            .ok_or_else(|| {
                refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_ready",
                    format!("{key} has no running instance yet"),
                )
            }),
        Ok(_) => Err(refused(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{key} not found"),
        )),
        Err(e) => Err(refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store",
            e.to_string(),
        )),
    }
}

/// How long a request waits for an instance that refuses connections (it is being
/// restarted or rolled) before the gateway gives up with 502.
const RESTART_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

async fn http<R: Registry>(
    s: &R,
    who: &R::Caller,
    key: &ObjectKey,
    req: Request,
    path: &str,
) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|l| l > MAX_BODY) {
        return too_large();
    }
    let has_body =
        declared.is_some_and(|l| l > 0) || parts.headers.contains_key(header::TRANSFER_ENCODING);
    if has_body && declared.is_none_or(|l| l > BUFFERED_BODY) {
        return streamed(s, who, key, parts, body, path).await;
    }
    let Ok(body) = to_bytes(body, BUFFERED_BODY as usize).await else {
        return too_large();
    };
    let deadline = tokio::time::Instant::now() + RESTART_GRACE;
    let idempotent = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let mut refused_once = false;
    loop {
        let (target, token) = match instance_by(s, who, key, deadline).await {
            Ok((e, token)) => (format!("{e}{path}"), token),
            Err(refused) => return *refused,
        };
        let out = outgoing(s.http(), &parts, &target, Some(&token)).body(body.clone());
        match out.send().await {
            // A token read before the workspace was made again: read it again, once.
            Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !refused_once => {
                refused_once = true;
                s.token_refused(key);
            }
            Ok(resp) => return answer(resp),
            // The connection was refused: the request never reached the instance, so it is
            // safe to hold it (any method) until the control plane has restarted the
            // instance and recorded its new address.
            // An idempotent request cut off by a dying instance is retried the same way.
            Err(e) if (e.is_connect() || idempotent) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => return unreachable_instance(&target, &e),
        }
    }
}

/// A large body streamed through to the instance, never held whole: sent once (it cannot
/// be sent again), so an instance that is restarting answers 503 with `Retry-After`.
async fn streamed<R: Registry>(
    s: &R,
    who: &R::Caller,
    key: &ObjectKey,
    parts: axum::http::request::Parts,
    body: Body,
    path: &str,
) -> Response {
    let deadline = tokio::time::Instant::now() + RESTART_GRACE;
    let (target, token) = match instance_by(s, who, key, deadline).await {
        Ok((e, token)) => (format!("{e}{path}"), token),
        Err(refused) => return *refused,
    };
    let out = outgoing(s.http(), &parts, &target, Some(&token))
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    match out.send().await {
        Ok(resp) => answer(resp),
        Err(e) if e.is_connect() => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            axum::Json(json!({"error": "restarting", "reason": format!("{key} is restarting; send the body again")})),
        )
            .into_response(),
        Err(e) => unreachable_instance(&target, &e),
    }
}

/// The request to `target`: method and the caller's end-to-end headers, with `token`
/// in place of the caller's credential when given (the instance's own), else the
/// caller's credential as it came (to v1, which checks its users itself).
pub(crate) fn outgoing(
    http: &reqwest::Client,
    parts: &axum::http::request::Parts,
    target: &str,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut out = http.request(parts.method.clone(), target);
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name.as_str()) && (token.is_none() || name != header::AUTHORIZATION) {
            out = out.header(name, value);
        }
    }
    match token {
        Some(t) => out.bearer_auth(t),
        None => out,
    }
}

/// The instance's answer, its body streamed back.
pub(crate) fn answer(resp: reqwest::Response) -> Response {
    let status = resp.status();
    let mut headers = HeaderMap::new();
    for (name, value) in resp.headers() {
        if !is_hop_by_hop(name.as_str()) {
            headers.insert(name.clone(), value.clone());
        }
    }
    (status, headers, Body::from_stream(resp.bytes_stream())).into_response()
}

fn unreachable_instance(target: &str, e: &reqwest::Error) -> Response {
    refuse(
        StatusCode::BAD_GATEWAY,
        "unreachable",
        format!("workspace instance at {target}: {e}"),
    )
}

fn too_large() -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("request bodies through the gateway are limited to {MAX_BODY} bytes"),
    )
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "host"
    )
}

async fn websocket(req: Request, target: String, token: &str) -> Response {
    let (mut parts, _) = req.into_parts();
    let Ok(auth) = axum::http::HeaderValue::from_str(&format!("Bearer {token}")) else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the instance's token cannot be a header".into(),
        );
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let url = target.replacen("http://", "ws://", 1);
    let Ok(mut backend_req) = url.clone().into_client_request() else {
        return refuse(
            StatusCode::BAD_GATEWAY,
            "unreachable",
            format!("bad backend URL {url}"),
        );
    };
    backend_req
        .headers_mut()
        .insert(header::AUTHORIZATION, auth);
    // Connect before accepting, so a refused backend (401, gone) is the client's answer.
    let backend = match tokio_tungstenite::connect_async(backend_req).await {
        Ok((b, _)) => b,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = resp.body().clone().unwrap_or_default();
            return (status, Body::from(body)).into_response();
        }
        Err(e) => {
            return refuse(
                StatusCode::BAD_GATEWAY,
                "unreachable",
                format!("{url}: {e}"),
            );
        }
    };
    upgrade.on_upgrade(move |client| pump(client, backend))
}

type Backend =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Copies frames both ways until either side closes.
async fn pump(client: WebSocket, backend: Backend) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut backend_tx, mut backend_rx) = backend.split();
    let downstream = async {
        while let Some(Ok(m)) = backend_rx.next().await {
            let m = match m {
                TgMessage::Text(t) => AxMessage::Text(t.as_str().into()),
                TgMessage::Binary(b) => AxMessage::Binary(b),
                TgMessage::Close(_) => break,
                _ => continue,
            };
            if client_tx.send(m).await.is_err() {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    let upstream = async {
        while let Some(Ok(m)) = client_rx.next().await {
            let m = match m {
                AxMessage::Text(t) => TgMessage::Text(t.as_str().into()),
                AxMessage::Binary(b) => TgMessage::Binary(b),
                AxMessage::Close(_) => break,
                _ => continue,
            };
            if backend_tx.send(m).await.is_err() {
                break;
            }
        }
        let _ = backend_tx.close().await;
    };
    tokio::select! {
        () = downstream => {},
        () = upstream => {},
    }
}
