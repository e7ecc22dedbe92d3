//! The embedded control plane as the gateway's [`Registry`]: callers hold its own tokens
//! and are checked against the roles the specs declare (a hash and a few lookups in
//! memory, no query); instances' tokens come from the driver; a wake on connect nudges
//! the controller and is audited.

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use coditect_specs::{ObjectKey, Workspace};

use super::Registry;
use super::wake::{until_serving, wake_if_asleep};
use crate::access::http::bearer;
use crate::access::{Identity, Outcome, Verb};
use crate::server::ServerState;
use crate::store::Store;

impl Registry for ServerState {
    type Store = Store;
    type Caller = Identity;

    fn store(&self) -> &Store {
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
    ) -> Result<Identity, Response> {
        let who = self
            .access
            .admit(bearer(headers, query))
            .map_err(IntoResponse::into_response)?;
        let policy = self.access.policy(&self.store);
        crate::server::authorize(&policy, &who, verb, key).map_err(IntoResponse::into_response)?;
        Ok(who)
    }

    async fn token(&self, key: &ObjectKey, _ws: &Workspace) -> Option<String> {
        let token = self.instances.token(key);
        if token.is_some() {
            self.instances.forwarding(key);
        }
        token
    }

    async fn wake(&self, who: &Identity, key: &ObjectKey) -> Result<(), Response> {
        if wake_if_asleep(&*self.store, key).await? {
            let _ = self.nudge.send(key.clone());
            tracing::info!(workspace = %key, user = %who.user, "waking on connect");
            crate::server::record(
                self,
                who,
                "wake",
                vec![key.to_string()],
                Outcome::Ok,
                Some("a request through the gateway".into()),
            )
            .await
            .map_err(IntoResponse::into_response)?;
        }
        until_serving(&*self.store, key).await
    }
}

/// `/u/{login}/{*rest}`: the user's request, to v1 or to their v2 workspace as their route
/// says (held while they are being cut over).
pub async fn user_proxy(
    axum::extract::State(s): axum::extract::State<ServerState>,
    axum::extract::Path((login, rest)): axum::extract::Path<(String, String)>,
    req: axum::extract::Request,
) -> Response {
    use super::users::{NoRoute, Route};
    use axum::http::StatusCode;
    match s.users.route(&login).await {
        Err(NoRoute::Unknown) => super::refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for user {login}: not part of a migration"),
        ),
        Err(NoRoute::HeldTooLong) => {
            let mut r = super::refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "cutting_over",
                format!("{login} is being cut over; try again"),
            );
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            r
        }
        Ok(Route::V2 { workspace }) => {
            let org = workspace.organization.clone().unwrap_or_default();
            super::forward(axum::extract::State(s), org, workspace.name, rest, req).await
        }
        Ok(Route::V1 { endpoint }) => to_v1(&s, &endpoint, &rest, req).await,
    }
}

/// Passes a request through to v1 as it came (v1 checks its users' credentials itself).
async fn to_v1(
    s: &ServerState,
    endpoint: &str,
    rest: &str,
    req: axum::extract::Request,
) -> Response {
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let target = format!("{}/{rest}{query}", endpoint.trim_end_matches('/'));
    let (parts, body) = req.into_parts();
    let out = super::outgoing(&s.http, &parts, &target, None)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    match out.send().await {
        Ok(resp) => super::answer(resp),
        Err(e) => super::refuse(
            axum::http::StatusCode::BAD_GATEWAY,
            "unreachable",
            format!("v1 at {target}: {e}"),
        ),
    }
}
