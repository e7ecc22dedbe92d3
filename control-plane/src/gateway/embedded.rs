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
        self.instances.token(key)
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
