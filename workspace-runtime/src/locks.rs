//! File locks over workspace paths: shared and exclusive leases with a TTL, fencing
//! tokens, hierarchical conflicts and FIFO waiting with a bounded wait.
//!
//! * **Hierarchy.** Paths are compared by component: a lock on `src` (or `src/`)
//!   overlaps `src/main.rs`; `.` is the whole workspace. Two overlapping locks conflict
//!   unless both are shared.
//! * **Fairness.** Requests wait in one FIFO line. A request is granted when it conflicts
//!   with no live grant *and* no request ahead of it in line, so a stream of readers
//!   cannot starve a writer.
//! * **Leases.** A grant lasts its TTL unless its holder renews it; a crashed holder's
//!   locks expire by themselves.
//! * **Fencing.** Each grant gets a token from a counter that only grows (persisted, so
//!   tokens never repeat across restarts). A write through the runtime carries its token
//!   and is refused unless the token is a live exclusive lease covering the path and is
//!   not older than the token of the file's last write.
//! * **Restart.** Grants live in `workspace_idx`. A restarted instance keeps each grant
//!   with its remaining wall-clock lease, so holders that survived (remote agents) keep
//!   their locks and tokens; grants whose lease ran out while the instance was down are
//!   expired (and logged) at start.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::clock;
use crate::db::Database;
use crate::error::LockError;
use crate::events::{EventDraft, EventLog, EventType};
use crate::metrics::Metrics;

/// Shared (readers) or exclusive (one writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Many holders; conflicts with exclusive.
    Shared,
    /// One holder; conflicts with everything overlapping.
    Exclusive,
}

impl LockMode {
    fn as_str(self) -> &'static str {
        match self {
            LockMode::Shared => "shared",
            LockMode::Exclusive => "exclusive",
        }
    }
}

/// A request for a lock. Unknown fields are refused (a `ttlMs` for `ttl_ms` would
/// otherwise be a silent default lease).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockRequest {
    /// Workspace-relative path (`src/`, `src/main.rs`, `.`).
    pub path: String,
    /// Shared or exclusive.
    pub mode: LockMode,
    /// Who asks (an agent's name).
    pub holder: String,
    /// Lease length; the workspace's `locks.leaseTtl` when absent.
    #[serde(default)]
    pub ttl_ms: Option<u64>,
    /// Longest wait; the workspace's `locks.acquireTimeout` when absent; 0 = try once.
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// A granted lease, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The fencing token; present it on writes, renewals and release.
    pub token: u64,
    /// The normalized path.
    pub path: String,
    /// Shared or exclusive.
    pub mode: LockMode,
    /// Who holds it.
    pub holder: String,
    /// RFC 3339 expiry unless renewed.
    pub expires_at: String,
    /// Milliseconds until expiry at the time of the answer.
    pub ttl_ms: u64,
}

#[derive(Debug)]
struct Grant {
    lease: Lease,
    parts: Vec<String>,
    deadline: Instant,
    granted: Instant,
}

/// A normalized request, as it waits in line and as it is granted.
#[derive(Debug)]
struct Pending {
    path: String,
    parts: Vec<String>,
    mode: LockMode,
    holder: String,
    ttl: Duration,
    since: Instant,
}

/// A request waiting in line for a path.
#[derive(Debug, Clone, Serialize)]
pub struct LockWaiter {
    /// The normalized path.
    pub path: String,
    /// Shared or exclusive.
    pub mode: LockMode,
    /// Who asks.
    pub holder: String,
    /// How long it has waited, in milliseconds.
    pub waited_ms: u64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    req: Pending,
    tx: oneshot::Sender<Lease>,
}

#[derive(Debug, Default)]
struct State {
    grants: BTreeMap<u64, Grant>,
    waiters: VecDeque<Waiter>,
    last_token: u64,
    next_waiter: u64,
}

/// Splits and checks a workspace-relative path.
///
/// # Errors
/// [`LockError::InvalidPath`] for absolute paths, `..`, control characters, or empty input.
pub fn normalize(path: &str) -> Result<(String, Vec<String>), LockError> {
    let invalid = |reason| LockError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if path.is_empty() {
        return Err(invalid("empty"));
    }
    if path.starts_with('/') || path.contains('\\') {
        return Err(invalid(
            "must be relative to the workspace, with '/' separators",
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(invalid(
            "must not contain control characters (NUL, newlines)",
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid("must not contain '..'")),
            p => parts.push(p.to_string()),
        }
    }
    let normalized = if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    };
    Ok((normalized, parts))
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn conflicts(a: (&[String], LockMode), b: (&[String], LockMode)) -> bool {
    (a.1 == LockMode::Exclusive || b.1 == LockMode::Exclusive) && overlaps(a.0, b.0)
}

/// The lock table of one workspace.
#[derive(Debug)]
pub struct LockTable {
    state: Mutex<State>,
    changed: Notify,
    db: Arc<crate::db::Databases>,
    events: EventLog,
    metrics: Arc<Metrics>,
    default_ttl: Duration,
    default_wait: Duration,
}

impl LockTable {
    /// Loads the persisted grants (expiring those whose lease ran out) and the token counter.
    ///
    /// # Errors
    /// When `workspace_idx` cannot be read.
    pub fn open(
        db: Arc<crate::db::Databases>,
        events: EventLog,
        metrics: Arc<Metrics>,
        default_ttl: Duration,
        default_wait: Duration,
    ) -> Result<Self, LockError> {
        let now_ms = clock::now_ms();
        let idx = &db.workspace_idx;
        let (rows, last_token) = idx
            .read(|c| {
                let mut stmt = c.prepare(
                    "SELECT token, path, mode, holder, expires_at FROM locks ORDER BY token",
                )?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, i64>(4)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let last: i64 = c
                    .query_row(
                        "SELECT value FROM counters WHERE name = 'fencing'",
                        [],
                        |r| r.get(0),
                    )
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(0),
                        e => Err(e),
                    })?;
                Ok((rows, last))
            })
            .map_err(LockError::from)?;
        let mut state = State {
            last_token: u64::try_from(last_token).unwrap_or(0),
            ..State::default()
        };
        let now = Instant::now();
        for (token, path, mode, holder, expires_at) in rows {
            let token = u64::try_from(token).unwrap_or(0);
            let expires_at = u64::try_from(expires_at).unwrap_or(0);
            let Ok((path, parts)) = normalize(&path) else {
                continue;
            };
            if expires_at <= now_ms {
                persist_delete(idx, token)?;
                events.append_nowait(EventDraft::new(
                    &holder,
                    EventType::LockReleased,
                    json!({"token": token, "path": path, "reason": "expired"}),
                ));
                continue;
            }
            let mode = if mode == "shared" {
                LockMode::Shared
            } else {
                LockMode::Exclusive
            };
            let remaining = Duration::from_millis(expires_at - now_ms);
            state.grants.insert(
                token,
                Grant {
                    lease: Lease {
                        token,
                        path,
                        mode,
                        holder,
                        expires_at: clock::rfc3339(expires_at),
                        ttl_ms: 0,
                    },
                    parts,
                    deadline: now + remaining,
                    granted: now,
                },
            );
        }
        Ok(LockTable {
            state: Mutex::new(state),
            changed: Notify::new(),
            db,
            events,
            metrics,
            default_ttl,
            default_wait,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Acquires a lock, waiting in line up to the request's bounded wait.
    ///
    /// # Errors
    /// [`LockError::Timeout`] naming the current holder; [`LockError::InvalidPath`].
    pub async fn acquire(&self, req: LockRequest) -> Result<Lease, LockError> {
        let (path, parts) = normalize(&req.path)?;
        let wait = req.wait_ms.map_or(self.default_wait, Duration::from_millis);
        let since = Instant::now();
        let mode = req.mode;
        let pending = Pending {
            path: path.clone(),
            parts: parts.clone(),
            mode,
            holder: req.holder,
            ttl: req.ttl_ms.map_or(self.default_ttl, Duration::from_millis),
            since,
        };
        let rx = {
            let mut st = self.state();
            self.expire_due(&mut st);
            // Everyone already in line is ahead of this request.
            let ahead: Vec<(&[String], LockMode)> = st
                .waiters
                .iter()
                .map(|w| (w.req.parts.as_slice(), w.req.mode))
                .collect();
            if is_free(&st, &ahead, &pending) {
                return self.grant(&mut st, pending);
            }
            if wait.is_zero() {
                return Err(timeout_error(&st, &path, &parts, mode, 0));
            }
            let (tx, rx) = oneshot::channel();
            let id = st.next_waiter;
            st.next_waiter += 1;
            st.waiters.push_back(Waiter {
                id,
                req: pending,
                tx,
            });
            (id, rx)
        };
        let (id, mut rx) = rx;
        match tokio::time::timeout(wait, &mut rx).await {
            Ok(Ok(lease)) => Ok(lease),
            _ => {
                let mut st = self.state();
                if let Some(pos) = st.waiters.iter().position(|w| w.id == id) {
                    st.waiters.remove(pos);
                    let waited = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
                    let err = timeout_error(&st, &path, &parts, mode, waited);
                    drop(st);
                    // Leaving the line may unblock requests queued behind this one.
                    self.pump_now();
                    return Err(err);
                }
                // Granted between the timeout and taking the lock: the lease is ours.
                rx.try_recv()
                    .map_err(|_| LockError::Storage("lock grant lost".into()))
            }
        }
    }

    fn grant(&self, st: &mut State, req: Pending) -> Result<Lease, LockError> {
        let Pending {
            path,
            parts,
            mode,
            holder,
            ttl,
            since,
        } = req;
        let token = st.last_token + 1;
        let now = Instant::now();
        let expires_at = clock::now_ms() + u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX / 2);
        let lease = Lease {
            token,
            path,
            mode,
            holder,
            expires_at: clock::rfc3339(expires_at),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        };
        self.db
            .workspace_idx
            .write(|tx| {
                tx.execute(
                    "INSERT INTO locks (token, path, mode, holder, granted_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![token as i64, lease.path, mode.as_str(), lease.holder, clock::now_ms() as i64, expires_at as i64],
                )?;
                tx.execute(
                    "INSERT INTO counters (name, value) VALUES ('fencing', ?1) ON CONFLICT(name) DO UPDATE SET value = ?1",
                    [token as i64],
                )?;
                Ok(())
            })
            .map_err(LockError::from)?;
        st.last_token = token;
        st.grants.insert(
            token,
            Grant {
                lease: lease.clone(),
                parts,
                deadline: now + ttl,
                granted: now,
            },
        );
        self.metrics
            .lock_wait
            .observe(since.elapsed().as_secs_f64());
        self.events.append_nowait(EventDraft::new(
            &lease.holder,
            EventType::LockAcquired,
            json!({"token": token, "path": lease.path, "mode": mode}),
        ));
        self.changed.notify_one();
        Ok(lease)
    }

    /// Extends a lease by its TTL (or `ttl_ms`) from now.
    ///
    /// # Errors
    /// [`LockError::UnknownToken`] when the lease was released or has expired.
    pub fn renew(&self, token: u64, ttl_ms: Option<u64>) -> Result<Lease, LockError> {
        let mut st = self.state();
        self.expire_due(&mut st);
        let ttl = ttl_ms.map_or(self.default_ttl, Duration::from_millis);
        let grant = st
            .grants
            .get_mut(&token)
            .ok_or(LockError::UnknownToken { token })?;
        let expires_at = clock::now_ms() + u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX / 2);
        self.db
            .workspace_idx
            .write(|tx| {
                tx.execute(
                    "UPDATE locks SET expires_at = ?1 WHERE token = ?2",
                    [expires_at as i64, token as i64],
                )
            })
            .map_err(LockError::from)?;
        grant.deadline = Instant::now() + ttl;
        grant.lease.expires_at = clock::rfc3339(expires_at);
        grant.lease.ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.changed.notify_one();
        Ok(grant.lease.clone())
    }

    /// Releases a lease and grants whoever is next in line.
    ///
    /// # Errors
    /// [`LockError::UnknownToken`] when the lease was already released or has expired.
    pub fn release(&self, token: u64) -> Result<(), LockError> {
        let mut st = self.state();
        self.expire_due(&mut st);
        if !st.grants.contains_key(&token) {
            return Err(LockError::UnknownToken { token });
        }
        self.remove(&mut st, token, "released")?;
        self.pump(&mut st);
        Ok(())
    }

    fn remove(&self, st: &mut State, token: u64, reason: &str) -> Result<(), LockError> {
        persist_delete(&self.db.workspace_idx, token)?;
        if let Some(g) = st.grants.remove(&token) {
            self.metrics
                .lock_hold
                .observe(g.granted.elapsed().as_secs_f64());
            self.events.append_nowait(EventDraft::new(
                &g.lease.holder,
                EventType::LockReleased,
                json!({"token": token, "path": g.lease.path, "reason": reason}),
            ));
        }
        Ok(())
    }

    /// Grants waiters in line order while they conflict with nothing granted or ahead.
    fn pump(&self, st: &mut State) {
        let mut blocked: Vec<(Vec<String>, LockMode)> = Vec::new();
        let mut i = 0;
        while i < st.waiters.len() {
            let w = &st.waiters[i].req;
            let ahead: Vec<(&[String], LockMode)> =
                blocked.iter().map(|(p, m)| (p.as_slice(), *m)).collect();
            if !is_free(st, &ahead, w) {
                blocked.push((w.parts.clone(), w.mode));
                i += 1;
                continue;
            }
            let Some(w) = st.waiters.remove(i) else { break };
            if w.tx.is_closed() {
                continue;
            }
            match self.grant(st, w.req) {
                Ok(lease) => {
                    if let Err(lease) = w.tx.send(lease) {
                        // The waiter went away after all: give the lock back.
                        let _ = self.remove(st, lease.token, "abandoned");
                    }
                }
                Err(e) => tracing::error!(error = %e, "granting a queued lock failed"),
            }
        }
    }

    fn pump_now(&self) {
        let mut st = self.state();
        self.expire_due(&mut st);
        self.pump(&mut st);
    }

    /// Expires every lease past its deadline.
    fn expire_due(&self, st: &mut State) -> bool {
        let now = Instant::now();
        let due: Vec<u64> = st
            .grants
            .iter()
            .filter(|(_, g)| g.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in &due {
            if let Err(e) = self.remove(st, *token, "expired") {
                tracing::error!(error = %e, token, "expiring a lock failed");
            }
        }
        !due.is_empty()
    }

    /// Expires leases at their deadlines and hands their paths to waiters, until
    /// `shutdown` resolves. Run it once per table.
    pub async fn run_expiry(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let next = self.state().grants.values().map(|g| g.deadline).min();
            let sleep = async {
                match next {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = self.changed.notified() => {}
                () = sleep => {
                    let mut st = self.state();
                    if self.expire_due(&mut st) {
                        self.pump(&mut st);
                    }
                }
            }
        }
    }

    /// Every live lease.
    pub fn list(&self) -> Vec<Lease> {
        let mut st = self.state();
        self.expire_due(&mut st);
        let now = Instant::now();
        st.grants
            .values()
            .map(|g| Lease {
                ttl_ms: u64::try_from(g.deadline.saturating_duration_since(now).as_millis())
                    .unwrap_or(u64::MAX),
                ..g.lease.clone()
            })
            .collect()
    }

    /// Requests waiting in line.
    pub fn waiting(&self) -> usize {
        self.state().waiters.len()
    }

    /// Who waits for which path, in line order.
    pub fn waiters(&self) -> Vec<LockWaiter> {
        let now = Instant::now();
        self.state()
            .waiters
            .iter()
            .map(|w| LockWaiter {
                path: w.req.path.clone(),
                mode: w.req.mode,
                holder: w.req.holder.clone(),
                waited_ms: u64::try_from(now.saturating_duration_since(w.req.since).as_millis())
                    .unwrap_or(u64::MAX),
            })
            .collect()
    }

    /// Checks that `token` may write `path` now.
    ///
    /// # Errors
    /// [`LockError::StaleFencingToken`] unless the token is a live exclusive lease covering
    /// the path; [`LockError::InvalidPath`].
    pub fn check_write(&self, token: u64, path: &str) -> Result<String, LockError> {
        let (path, parts) = normalize(path)?;
        let mut st = self.state();
        self.expire_due(&mut st);
        let stale = |reason: String| LockError::StaleFencingToken {
            token,
            path: path.clone(),
            reason,
        };
        let Some(g) = st.grants.get(&token) else {
            return Err(stale("the lease was released or has expired".into()));
        };
        if g.lease.mode != LockMode::Exclusive {
            return Err(stale("a shared lock does not permit writes".into()));
        }
        if g.parts.len() > parts.len() || !overlaps(&g.parts, &parts) {
            return Err(stale(format!(
                "the lease covers {}, not this path",
                g.lease.path
            )));
        }
        Ok(path)
    }
}

/// Whether `req` conflicts with no live grant and with none of the requests `ahead` of it.
fn is_free(st: &State, ahead: &[(&[String], LockMode)], req: &Pending) -> bool {
    let me = (req.parts.as_slice(), req.mode);
    !st.grants
        .values()
        .any(|g| conflicts((&g.parts, g.lease.mode), me))
        && !ahead.iter().any(|other| conflicts(*other, me))
}

fn persist_delete(idx: &Database, token: u64) -> Result<(), LockError> {
    idx.write(|tx| tx.execute("DELETE FROM locks WHERE token = ?1", [token as i64]))
        .map(|_| ())
        .map_err(|e| LockError::Storage(e.to_string()))
}

fn timeout_error(
    st: &State,
    path: &str,
    parts: &[String],
    mode: LockMode,
    waited_ms: u64,
) -> LockError {
    let holder = st
        .grants
        .values()
        .find(|g| conflicts((&g.parts, g.lease.mode), (parts, mode)))
        .map(|g| {
            (
                g.lease.holder.clone(),
                g.lease.token,
                g.lease.path.clone(),
                g.lease.mode.as_str(),
            )
        })
        .or_else(|| {
            st.waiters
                .iter()
                .map(|w| &w.req)
                .find(|w| conflicts((&w.parts, w.mode), (parts, mode)))
                .map(|w| {
                    (
                        format!("{} (queued ahead)", w.holder),
                        0,
                        w.path.clone(),
                        w.mode.as_str(),
                    )
                })
        })
        .unwrap_or_else(|| ("nobody".into(), 0, String::new(), ""));
    LockError::Timeout {
        path: path.to_string(),
        waited_ms,
        holder: holder.0,
        token: holder.1,
        held_path: holder.2,
        mode: holder.3.to_string(),
    }
}
