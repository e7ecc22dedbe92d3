//! Each instance's own API token, from its Secret (`spec.apiToken.secretRef`, by default
//! `{workspace}-api-token` with key `token`, which the driver creates once). The operator
//! (asking instances for their status, the auto-sleeper) and the gateway (calling an
//! instance for a user) read it here; once read it is kept, since it never changes while
//! clients hold it.

use std::collections::HashMap;
use std::sync::Mutex;

use coditect_specs::{ObjectKey, Resource, Workspace};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::{mapping, workload};
use crate::driver::InstanceTokens;

/// Instance tokens read from Secrets, remembered per workspace.
pub struct SecretTokens {
    client: kube::Client,
    known: Mutex<HashMap<ObjectKey, String>>,
    /// When a read last failed: not read again for [`RETRY_AFTER`] (a request held
    /// while its pod restarts asks every few milliseconds).
    failed: Mutex<HashMap<ObjectKey, tokio::time::Instant>>,
}

/// How long a failed read is not tried again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl std::fmt::Debug for SecretTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretTokens").finish_non_exhaustive()
    }
}

/// The Secret and key that hold `ws`'s token.
fn secret_of(ws: &Workspace) -> (String, String) {
    match ws
        .spec
        .api_token
        .as_ref()
        .and_then(|c| c.secret_ref.as_ref())
    {
        Some(r) => (r.name.clone(), r.key.clone()),
        None => (
            workload::token_secret_name(&ws.metadata.name),
            "token".into(),
        ),
    }
}

impl SecretTokens {
    /// Tokens read through `client`.
    pub fn new(client: kube::Client) -> Self {
        SecretTokens {
            client,
            known: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, String>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `ws`'s token: remembered, or read from its Secret (`None` while there is none).
    pub async fn load(&self, ws: &Workspace) -> Option<String> {
        let key = Resource::Workspace(ws.clone()).key();
        if let Some(t) = self.known().get(&key) {
            return Some(t.clone());
        }
        if self
            .failed()
            .get(&key)
            .is_some_and(|at| at.elapsed() < RETRY_AFTER)
        {
            return None;
        }
        let token = self.read(ws, &key).await;
        match &token {
            Some(t) => {
                self.failed().remove(&key);
                self.known().insert(key, t.clone());
            }
            None => {
                self.failed().insert(key, tokio::time::Instant::now());
            }
        }
        token
    }

    async fn read(&self, ws: &Workspace, key: &ObjectKey) -> Option<String> {
        let ns = mapping::namespace(ws.metadata.organization.as_deref().unwrap_or_default());
        let (name, field) = secret_of(ws);
        let secret = Api::<Secret>::namespaced(self.client.clone(), &ns)
            .get(&name)
            .await
            .map_err(|e| tracing::debug!(workspace = %key, error = %e, "token Secret not read"))
            .ok()?;
        let bytes = secret.data?.get(&field)?.0.clone();
        Some(String::from_utf8(bytes).ok()?.trim().to_string())
    }

    fn failed(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, tokio::time::Instant>> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets `key`'s token (the workspace stopped, or its instance refused it).
    pub fn forget(&self, key: &ObjectKey) {
        self.known().remove(key);
        self.failed().remove(key);
    }
}

impl InstanceTokens for SecretTokens {
    fn token(&self, key: &ObjectKey) -> Option<String> {
        self.known().get(key).cloned()
    }
}
