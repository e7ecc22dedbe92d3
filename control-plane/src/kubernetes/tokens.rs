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
}

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
        let ns = mapping::namespace(ws.metadata.organization.as_deref().unwrap_or_default());
        let (name, field) = secret_of(ws);
        let secret = Api::<Secret>::namespaced(self.client.clone(), &ns)
            .get(&name)
            .await
            .map_err(|e| tracing::debug!(workspace = %key, error = %e, "token Secret not read"))
            .ok()?;
        let bytes = secret.data?.get(&field)?.0.clone();
        let token = String::from_utf8(bytes).ok()?.trim().to_string();
        self.known().insert(key, token.clone());
        Some(token)
    }

    /// Forgets `key`'s token (the workspace is gone).
    pub fn forget(&self, key: &ObjectKey) {
        self.known().remove(key);
    }
}

impl InstanceTokens for SecretTokens {
    fn token(&self, key: &ObjectKey) -> Option<String> {
        self.known().get(key).cloned()
    }
}
