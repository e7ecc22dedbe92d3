//! Access control: who a request comes from, what they may do, a limit on how often, and
//! a trail of every change.
//!
//! ```text
//!  request ─► bearer token ─► TokenStore (hash lookup, in memory) ─► Identity
//!                                   │ 401 unknown / revoked / expired
//!             RateLimiter (per token) ─► 429 + Retry-After
//!             Policy (roles from the specs, rebuilt when a spec changes)
//!                 decide(identity, verb, subject) ─► 403 naming the missing permission
//!             handler ─► change ─► AuditLog (hash-chained, fsynced before the answer)
//! ```
//!
//! The API and the gateway share all of it; the gateway then talks to the instance with
//! the instance's own token, so users never handle workspace tokens.

pub mod audit;
pub mod http;
pub mod policy;
pub mod rate;
pub mod tls;
pub mod tokens;

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::selector::LabelSelector;
use crate::store::Store;

pub use audit::{AuditLog, Entry, Outcome};
pub use policy::{Denial, Identity, Policy, Subject, Verb};
pub use rate::{RateLimit, RateLimiter};
pub use tokens::{NewToken, TokenRecord, TokenStore};

/// Why access control could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AccessError {
    /// No valid credential came with the request.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The token table failed.
    #[error("tokens: {0}")]
    Store(String),
    /// The audit trail could not be opened or written.
    #[error("audit trail: {0}")]
    Audit(String),
    /// Bad input (a user name, a TTL).
    #[error("{0}")]
    Invalid(String),
    /// No such token.
    #[error("{0} not found")]
    NotFound(String),
    /// The TLS certificate or key could not be used.
    #[error("tls: {0}")]
    Tls(String),
}

/// Everything access control holds, shared by the API and the gateway.
#[derive(Debug)]
pub struct Access {
    /// Who a token names.
    pub tokens: TokenStore,
    /// Every change.
    pub audit: AuditLog,
    limiter: RateLimiter,
    /// The roles, with the store's spec epoch they were read at.
    policy: RwLock<(u64, Arc<Policy>)>,
}

impl Access {
    /// Opens the token table in the store's database and the audit trail under
    /// `data_dir/audit/`.
    ///
    /// # Errors
    /// [`AccessError`] when either cannot be opened.
    pub fn open(data_dir: &Path, limit: RateLimit) -> Result<Access, AccessError> {
        Ok(Access {
            tokens: TokenStore::open(&data_dir.join("controlplane.db"))?,
            audit: AuditLog::open(&data_dir.join("audit"))?,
            limiter: RateLimiter::new(limit),
            policy: RwLock::new((u64::MAX, Arc::new(Policy::default()))),
        })
    }

    /// Who `token` names, after its rate limit.
    ///
    /// # Errors
    /// [`http::Refusal::Unauthenticated`] or [`http::Refusal::RateLimited`].
    pub fn admit(&self, token: Option<&str>) -> Result<Identity, http::Refusal> {
        let token = token.ok_or_else(|| {
            http::Refusal::Unauthenticated(
                "no bearer token: send `Authorization: Bearer <token>` (the CLI finds the admin credential in <data-dir>/admin.yaml; `coditect token create` makes one for a user)".into(),
            )
        })?;
        let who = self
            .tokens
            .authenticate(token)
            .map_err(|e| http::Refusal::Unauthenticated(e.to_string()))?;
        if !who.cluster_admin {
            self.limiter
                .take(&who.token_id)
                .map_err(http::Refusal::RateLimited)?;
        }
        Ok(who)
    }

    /// The roles as the store holds them now (rebuilt only when a spec changed).
    pub fn policy(&self, store: &Store) -> Arc<Policy> {
        let epoch = store.spec_epoch();
        {
            let cached = self.policy.read().unwrap_or_else(|p| p.into_inner());
            if cached.0 == epoch {
                return cached.1.clone();
            }
        }
        let Ok(objects) = store.list(None, None, &LabelSelector::default()) else {
            // Fail closed, and try again on the next check.
            return Arc::new(Policy::default());
        };
        let policy = Arc::new(Policy::from_resources(&objects));
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = (epoch, policy.clone());
        policy
    }
}
