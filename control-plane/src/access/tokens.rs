//! Tokens: who a request comes from.
//!
//! A token reads `cdt_{id}_{secret}`. The store keeps its id, its user and the SHA-256 of
//! the whole token, never the token itself (a leaked database opens nothing). Every
//! token that is not revoked is also held in memory, so checking one costs a hash and a
//! lookup, not a query; revoking updates memory and the database together, so it takes
//! effect on the very next request.
//!
//! `up` writes the bootstrap credential, a cluster admin's token, to
//! `<data>/admin.yaml` (mode 0600, a client config the CLI finds), the way k3s writes its
//! kubeconfig; the file is kept across restarts and re-issued when it is missing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use coditect_runtime::api::constant_time_eq;
use coditect_runtime::clock::{now_ms, rfc3339};

use rusqlite::{Connection, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::AccessError;
use super::policy::Identity;

/// A token as stored and listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// The public part of the token (`cdt_{id}_…`).
    pub id: String,
    /// The user it names.
    pub user: String,
    /// Whether it may do everything.
    pub cluster_admin: bool,
    /// RFC 3339.
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// RFC 3339; none: it does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// What it is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip)]
    hash: [u8; 32],
    #[serde(skip)]
    expires_ms: Option<u64>,
}

/// What a new token is.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    /// The user it names.
    pub user: String,
    /// How long it lives (none: until revoked).
    pub ttl: Option<Duration>,
    /// Whether it may do everything.
    pub cluster_admin: bool,
    /// What it is for.
    pub description: Option<String>,
}

/// The longest a token may live (ten years); longer is refused rather than overflowing
/// a time.
pub const MAX_TTL: Duration = Duration::from_secs(3650 * 86_400);

/// The description of the credential `up` writes.
pub const BOOTSTRAP: &str = "bootstrap admin credential (admin.yaml)";

/// The tokens: a table in the control plane's database, mirrored in memory.
#[derive(Debug)]
pub struct TokenStore {
    conn: Mutex<Connection>,
    live: RwLock<HashMap<String, TokenRecord>>,
}

fn sqlite(e: rusqlite::Error) -> AccessError {
    AccessError::Store(e.to_string())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The id part of `cdt_{id}_{secret}`.
fn id_of(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("cdt_")?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some(id)
}

impl TokenStore {
    /// Opens the `tokens` table of the database at `path` (creating it) and loads the
    /// tokens that are not revoked.
    ///
    /// # Errors
    /// [`AccessError::Store`].
    pub fn open(path: &Path) -> Result<TokenStore, AccessError> {
        let conn = Connection::open(path).map_err(sqlite)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS tokens (
                id TEXT PRIMARY KEY, user TEXT NOT NULL, hash BLOB NOT NULL,
                cluster_admin INTEGER NOT NULL, created_at TEXT NOT NULL,
                created_by TEXT NOT NULL, expires_ms INTEGER, description TEXT,
                revoked_at TEXT);",
        )
        .map_err(sqlite)?;
        let mut live = HashMap::new();
        {
            let mut stmt = conn
                .prepare(
                    "SELECT id, user, hash, cluster_admin, created_at, created_by, expires_ms, description
                     FROM tokens WHERE revoked_at IS NULL",
                )
                .map_err(sqlite)?;
            let rows = stmt
                .query_map([], |r| {
                    let hash: Vec<u8> = r.get(2)?;
                    let expires_ms: Option<i64> = r.get(6)?;
                    let expires_ms = expires_ms.map(|m| u64::try_from(m).unwrap_or(0));
                    Ok(TokenRecord {
                        id: r.get(0)?,
                        user: r.get(1)?,
                        hash: hash.try_into().unwrap_or([0; 32]),
                        cluster_admin: r.get(3)?,
                        created_at: r.get(4)?,
                        created_by: r.get(5)?,
                        expires_at: expires_ms.map(rfc3339),
                        description: r.get(7)?,
                        expires_ms,
                    })
                })
                .map_err(sqlite)?;
            for row in rows {
                let record = row.map_err(sqlite)?;
                live.insert(record.id.clone(), record);
            }
        }
        Ok(TokenStore {
            conn: Mutex::new(conn),
            live: RwLock::new(live),
        })
    }

    /// Creates a token and returns it with its secret, which is shown this once.
    ///
    /// # Errors
    /// [`AccessError::Store`]; [`AccessError::Invalid`] for a user name that is not a
    /// DNS-1123 label.
    pub fn create(&self, new: &NewToken, by: &str) -> Result<(TokenRecord, String), AccessError> {
        if !is_label(&new.user) {
            return Err(AccessError::Invalid(format!(
                "user {:?} is not a valid name (lowercase letters, digits and '-', at most 63)",
                new.user
            )));
        }
        if new.ttl.is_some_and(|t| t > MAX_TTL || t.is_zero()) {
            return Err(AccessError::Invalid(format!(
                "ttl must be between 1s and {} days",
                MAX_TTL.as_secs() / 86_400
            )));
        }
        let id = hex::encode(rand::random::<[u8; 6]>());
        let secret = hex::encode(rand::random::<[u8; 20]>());
        let token = format!("cdt_{id}_{secret}");
        let created = now_ms();
        let expires_ms = new
            .ttl
            .map(|t| created + u64::try_from(t.as_millis()).unwrap_or(u64::MAX / 2));
        let record = TokenRecord {
            id: id.clone(),
            user: new.user.clone(),
            cluster_admin: new.cluster_admin,
            created_at: rfc3339(created),
            created_by: by.to_string(),
            expires_at: expires_ms.map(rfc3339),
            description: new.description.clone(),
            hash: digest(&token),
            expires_ms,
        };
        self.conn()
            .execute(
                "INSERT INTO tokens (id, user, hash, cluster_admin, created_at, created_by, expires_ms, description)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    record.id,
                    record.user,
                    record.hash.to_vec(),
                    record.cluster_admin,
                    record.created_at,
                    record.created_by,
                    expires_ms.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
                    record.description,
                ],
            )
            .map_err(sqlite)?;
        self.write_live().insert(id, record.clone());
        Ok((record, token))
    }

    /// Revokes a token by id; from the next request on it opens nothing. Returns the
    /// record it revoked.
    ///
    /// # Errors
    /// [`AccessError::NotFound`] when no live token has the id; [`AccessError::Store`].
    pub fn revoke(&self, id: &str) -> Result<TokenRecord, AccessError> {
        let record = self
            .get(id)
            .ok_or_else(|| AccessError::NotFound(format!("token {id}")))?;
        self.conn()
            .execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1",
                params![id, rfc3339(now_ms())],
            )
            .map_err(sqlite)?;
        self.write_live().remove(id);
        Ok(record)
    }

    /// A live token by id.
    pub fn get(&self, id: &str) -> Option<TokenRecord> {
        self.read_live().get(id).cloned()
    }

    /// Live tokens, of one user or of all, oldest first.
    pub fn list(&self, user: Option<&str>) -> Vec<TokenRecord> {
        let mut out: Vec<TokenRecord> = self
            .read_live()
            .values()
            .filter(|t| user.is_none_or(|u| t.user == u))
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        out
    }

    /// Who a bearer token names, checked now.
    ///
    /// # Errors
    /// [`AccessError::Unauthenticated`] saying why (unknown, revoked or expired).
    pub fn authenticate(&self, token: &str) -> Result<Identity, AccessError> {
        self.authenticate_at(token, now_ms())
    }

    /// [`TokenStore::authenticate`] as of `now_ms` (milliseconds since the epoch).
    ///
    /// # Errors
    /// [`AccessError::Unauthenticated`].
    pub fn authenticate_at(&self, token: &str, now_ms: u64) -> Result<Identity, AccessError> {
        let unknown = || {
            AccessError::Unauthenticated(
                "the token is not valid (unknown or revoked); ask an admin for a new one".into(),
            )
        };
        let id = id_of(token).ok_or_else(unknown)?;
        let live = self.read_live();
        let record = live.get(id).ok_or_else(unknown)?;
        if !constant_time_eq(&record.hash, &digest(token)) {
            return Err(unknown());
        }
        if record.expires_ms.is_some_and(|e| e <= now_ms) {
            return Err(AccessError::Unauthenticated(format!(
                "the token {id} expired at {}",
                record.expires_at.clone().unwrap_or_default()
            )));
        }
        Ok(Identity {
            user: record.user.clone(),
            token_id: record.id.clone(),
            cluster_admin: record.cluster_admin,
        })
    }

    /// The bootstrap credential: `existing` (the token in `admin.yaml`) when it still
    /// opens the cluster, else a new cluster-admin token, the earlier bootstrap tokens
    /// revoked. Returns the token and whether it is new.
    ///
    /// # Errors
    /// [`AccessError::Store`].
    pub fn bootstrap(&self, existing: Option<&str>) -> Result<(String, bool), AccessError> {
        if let Some(token) = existing
            && self.authenticate(token).is_ok_and(|who| who.cluster_admin)
        {
            return Ok((token.to_string(), false));
        }
        let stale: Vec<String> = self
            .list(None)
            .into_iter()
            .filter(|t| t.description.as_deref() == Some(BOOTSTRAP))
            .map(|t| t.id)
            .collect();
        for id in stale {
            self.revoke(&id)?;
        }
        let (_, token) = self.create(
            &NewToken {
                user: "admin".into(),
                ttl: None,
                cluster_admin: true,
                description: Some(BOOTSTRAP.into()),
            },
            "up",
        )?;
        Ok((token, true))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_live(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, TokenRecord>> {
        self.live.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_live(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, TokenRecord>> {
        self.live.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn store() -> (tempfile::TempDir, TokenStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(&dir.path().join("cp.db")).unwrap();
        (dir, store)
    }

    fn alice(ttl: Option<Duration>) -> NewToken {
        NewToken {
            user: "alice".into(),
            ttl,
            ..NewToken::default()
        }
    }

    #[test]
    fn a_token_names_its_user_and_only_its_hash_is_stored() {
        let (dir, s) = store();
        let (record, token) = s.create(&alice(None), "admin").unwrap();
        assert_eq!(s.authenticate(&token).unwrap().user, "alice");
        drop(s);
        let bytes = std::fs::read(dir.path().join("cp.db")).unwrap();
        let secret = token.rsplit('_').next().unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is in the database"
        );
        // Reopened, the token still opens (loaded from its hash).
        let s = TokenStore::open(&dir.path().join("cp.db")).unwrap();
        assert_eq!(s.authenticate(&token).unwrap().token_id, record.id);
    }

    #[test]
    fn revocation_takes_effect_at_once_and_survives_a_restart() {
        let (dir, s) = store();
        let (record, token) = s.create(&alice(None), "admin").unwrap();
        s.revoke(&record.id).unwrap();
        assert!(s.authenticate(&token).is_err());
        let s = TokenStore::open(&dir.path().join("cp.db")).unwrap();
        assert!(s.authenticate(&token).is_err());
    }

    #[test]
    fn an_expired_token_says_so() {
        let (_dir, s) = store();
        let (record, token) = s
            .create(&alice(Some(Duration::from_secs(60))), "admin")
            .unwrap();
        let created = record.expires_ms.unwrap() - 60_000;
        assert!(s.authenticate_at(&token, created + 59_999).is_ok());
        let e = s.authenticate_at(&token, created + 60_000).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
    }

    #[test]
    fn a_ttl_beyond_ten_years_or_of_zero_is_refused() {
        let (_dir, s) = store();
        for ttl in [Duration::from_secs(3651 * 86_400), Duration::ZERO] {
            let e = s.create(&alice(Some(ttl)), "admin").unwrap_err();
            assert!(matches!(e, AccessError::Invalid(_)), "{e}");
        }
        assert!(s.create(&alice(Some(MAX_TTL)), "admin").is_ok());
    }

    #[test]
    fn a_forged_secret_with_a_real_id_is_refused() {
        let (_dir, s) = store();
        let (record, _) = s.create(&alice(None), "admin").unwrap();
        let forged = format!("cdt_{}_{}", record.id, "0".repeat(40));
        assert!(s.authenticate(&forged).is_err());
        assert!(s.authenticate("not-a-token").is_err());
    }

    #[test]
    fn bootstrap_keeps_a_valid_credential_and_replaces_a_lost_one() {
        let (_dir, s) = store();
        let (first, new) = s.bootstrap(None).unwrap();
        assert!(new);
        let (again, new) = s.bootstrap(Some(&first)).unwrap();
        assert!(!new);
        assert_eq!(again, first);
        let (second, new) = s.bootstrap(Some("cdt_lost_token")).unwrap();
        assert!(new);
        assert!(
            s.authenticate(&first).is_err(),
            "the old bootstrap token is revoked"
        );
        assert!(s.authenticate(&second).unwrap().cluster_admin);
    }
}
