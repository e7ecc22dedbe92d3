//! The resource store: every Organization, Team and Workspace, in one SQLite file (WAL)
//! under the control plane's data directory, with Kubernetes-style bookkeeping.
//!
//! * `metadata.resourceVersion` comes from one counter that grows with every write, and
//!   every write is also appended to a change log, so a watch can resume from any version.
//! * `metadata.generation` grows only when the spec changes (its hash differs); status
//!   and label writes leave it alone, so reconcilers can filter on it.
//! * An apply of many objects is one transaction: all of it is written, or none.
//! * Workspaces carry the `coditect.io/runtime` finalizer: deleting one only marks it
//!   (`deletionTimestamp`) until its reconciler has stopped the instance and removed the
//!   finalizer.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use coditect_specs::{Kind, ObjectKey, Resource};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::StoreError;
use crate::selector::LabelSelector;

mod migration_users;
mod routes;
pub use migration_users::MigrationWish;

/// The finalizer that keeps a Workspace until its instance is stopped.
pub const RUNTIME_FINALIZER: &str = "coditect.io/runtime";

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeType {
    /// Created.
    Added,
    /// Changed (spec, metadata or status).
    Modified,
    /// Gone.
    Deleted,
}

/// One entry of the change log, as a watch delivers it.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// What happened.
    #[serde(rename = "type")]
    pub change: ChangeType,
    /// The object after the change (before it, for a deletion).
    pub object: Value,
    /// The store's version after the change.
    #[serde(rename = "resourceVersion")]
    pub resource_version: u64,
}

/// What an apply did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyAction {
    /// It did not exist.
    Created,
    /// Its spec, labels or annotations changed.
    Configured,
    /// Nothing changed.
    Unchanged,
}

/// The outcome of applying one object.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// Which object.
    pub key: String,
    /// What happened.
    pub action: ApplyAction,
    /// Its generation afterwards.
    pub generation: i64,
}

/// A reconcile event, for `describe`.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectEvent {
    /// RFC 3339.
    pub time: String,
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub event_type: String,
    /// CamelCase reason.
    pub reason: String,
    /// What happened.
    pub message: String,
}

/// The store.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    changes: broadcast::Sender<Change>,
    /// Grows when a spec is written or an object disappears (not on status writes), so
    /// what is derived from specs alone (access control's roles) knows when to re-read.
    spec_epoch: AtomicU64,
}

fn key_parts(key: &ObjectKey) -> (&'static str, String, String) {
    (
        key.kind.as_str(),
        key.organization.clone().unwrap_or_default(),
        key.name.clone(),
    )
}

/// The phase recorded when a workspace is gone (deleted).
pub const GONE: &str = "Gone";

/// One recorded change of a workspace's phase.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseTransition {
    /// The organization.
    pub organization: String,
    /// The workspace.
    pub workspace: String,
    /// The phase it entered ([`GONE`] when deleted).
    pub phase: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

fn sqlite(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(e.to_string())
}

/// [`Store::list_running`]'s query (served by the `objects_awake` index).
const LIST_RUNNING: &str = "SELECT body FROM objects WHERE kind = 'Workspace' AND org = ?1
   AND json_extract(body, '$.status.phase') = 'Running'
   AND json_extract(body, '$.status.sleep') IS NULL";

/// [`Store::count_awake`]'s query (served by the `objects_awake` index).
const COUNT_AWAKE: &str =
    "SELECT count(*) FROM objects WHERE kind = 'Workspace' AND org = ?1 AND name != ?2
   AND json_extract(body, '$.status.sleep') IS NULL
   AND json_extract(body, '$.status.phase') IN ('Starting', 'Waking', 'Running')";

impl Store {
    /// Opens (creating) the store at `path`.
    ///
    /// # Errors
    /// When SQLite cannot open or migrate the file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Io(format!("create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS objects (
                kind TEXT NOT NULL, org TEXT NOT NULL, name TEXT NOT NULL,
                generation INTEGER NOT NULL, resource_version INTEGER NOT NULL,
                spec_hash TEXT NOT NULL, body TEXT NOT NULL,
                PRIMARY KEY (kind, org, name));
             CREATE TABLE IF NOT EXISTS changes (
                rv INTEGER PRIMARY KEY, type TEXT NOT NULL, body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS events (
                id INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, org TEXT NOT NULL,
                name TEXT NOT NULL, type TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS events_by_object ON events (kind, org, name, id);
             CREATE TABLE IF NOT EXISTS phases (
                id INTEGER PRIMARY KEY, org TEXT NOT NULL, name TEXT NOT NULL,
                phase TEXT NOT NULL, at_ms INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS phases_by_workspace ON phases (org, name, id);
             CREATE TABLE IF NOT EXISTS user_routes (login TEXT PRIMARY KEY, route TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS migration_users (
                migration TEXT NOT NULL, login TEXT NOT NULL, record TEXT NOT NULL,
                PRIMARY KEY (migration, login));
             -- What count_awake and list_running ask, indexed, so neither parses every
             -- workspace's JSON (their queries must use these same expressions).
             CREATE INDEX IF NOT EXISTS objects_awake ON objects (kind, org,
                json_extract(body, '$.status.phase'), json_extract(body, '$.status.sleep'));
             CREATE TABLE IF NOT EXISTS migration_wishes (
                migration TEXT NOT NULL, login TEXT NOT NULL, action TEXT NOT NULL,
                approve INTEGER NOT NULL, by TEXT NOT NULL, PRIMARY KEY (migration, login));",
        )
        .map_err(sqlite)?;
        let (changes, _) = broadcast::channel(4096);
        Ok(Store {
            conn: Mutex::new(conn),
            changes,
            spec_epoch: AtomicU64::new(0),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A number that changes whenever a spec is written or an object disappears; status
    /// writes leave it alone.
    pub fn spec_epoch(&self) -> u64 {
        self.spec_epoch.load(Ordering::Acquire)
    }

    /// The current resource version.
    pub fn resource_version(&self) -> u64 {
        current_version(&self.conn()).unwrap_or(0)
    }

    /// One object.
    ///
    /// # Errors
    /// Storage failures.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Resource>, StoreError> {
        read(&self.conn(), key)
    }

    /// Objects of a kind (all kinds when `None`), optionally in one organization, matching
    /// a label selector; in kind, organization, name order.
    ///
    /// # Errors
    /// Storage failures.
    pub fn list(
        &self,
        kind: Option<Kind>,
        org: Option<&str>,
        selector: &LabelSelector,
    ) -> Result<Vec<Resource>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT body FROM objects WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR org = ?2) ORDER BY kind, org, name")
            .map_err(sqlite)?;
        let bodies = stmt
            .query_map(params![kind.map(|k| k.as_str()), org], |r| {
                r.get::<_, String>(0)
            })
            .map_err(sqlite)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sqlite)?;
        let mut out = Vec::new();
        for b in bodies {
            let r = decode(&b)?;
            if selector.matches(&r.metadata().labels) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Applies `objects` (validated, defaulted) in one transaction. With `dry_run`, reports
    /// what would happen and writes nothing.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when an object names a `resourceVersion` that is no longer
    /// current, or is being deleted; storage failures. Nothing is written then.
    pub fn apply(&self, objects: &[Resource], dry_run: bool) -> Result<Vec<Applied>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sqlite)?;
        let mut rv = current_version(&tx)?;
        let mut out = Vec::new();
        let mut emitted = Vec::new();
        for object in objects {
            let key = object.key();
            let (kind, org, name) = key_parts(&key);
            let hash = coditect_specs::spec_hash(object);
            let existing: Option<(String, i64)> = tx
                .query_row("SELECT body, generation FROM objects WHERE kind = ?1 AND org = ?2 AND name = ?3", params![kind, org, name], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(sqlite)?;
            let (mut next, action, generation) = match existing {
                None => {
                    let mut next = object.clone();
                    let m = next.metadata_mut();
                    m.generation = Some(1);
                    m.uid = Some(hex::encode(rand::random::<[u8; 16]>()));
                    m.creation_timestamp = Some(now());
                    m.deletion_timestamp = None;
                    m.finalizers = if key.kind == Kind::Workspace {
                        vec![RUNTIME_FINALIZER.to_string()]
                    } else {
                        Vec::new()
                    };
                    clear_status(&mut next);
                    (next, ApplyAction::Created, 1)
                }
                Some((body, generation)) => {
                    let current = decode(&body)?;
                    let cm = current.metadata();
                    if cm.deletion_timestamp.is_some() {
                        return Err(StoreError::Conflict(format!(
                            "{key} is being deleted; apply again once it is gone"
                        )));
                    }
                    if let Some(wanted) = &object.metadata().resource_version
                        && Some(wanted) != cm.resource_version.as_ref()
                    {
                        return Err(StoreError::Conflict(format!(
                            "{key} has resourceVersion {}, not {wanted}: it changed since it was read",
                            cm.resource_version.clone().unwrap_or_default()
                        )));
                    }
                    let spec_changed = coditect_specs::spec_hash(&current) != hash;
                    let meta_changed = cm.labels != object.metadata().labels
                        || cm.annotations != object.metadata().annotations;
                    if !spec_changed && !meta_changed {
                        out.push(Applied {
                            key: key.to_string(),
                            action: ApplyAction::Unchanged,
                            generation,
                        });
                        continue;
                    }
                    let generation = if spec_changed {
                        generation + 1
                    } else {
                        generation
                    };
                    let mut next = object.clone();
                    copy_server_fields(&current, &mut next, generation);
                    (next, ApplyAction::Configured, generation)
                }
            };
            rv += 1;
            next.metadata_mut().resource_version = Some(rv.to_string());
            let body =
                serde_json::to_string(&next).map_err(|e| StoreError::Sqlite(e.to_string()))?;
            tx.execute(
                "INSERT INTO objects (kind, org, name, generation, resource_version, spec_hash, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (kind, org, name) DO UPDATE SET generation = ?4, resource_version = ?5, spec_hash = ?6, body = ?7",
                params![kind, org, name, generation, rv as i64, hash, body],
            )
            .map_err(sqlite)?;
            let change = if action == ApplyAction::Created {
                ChangeType::Added
            } else {
                ChangeType::Modified
            };
            emitted.push(log_change(&tx, rv, change, &next)?);
            out.push(Applied {
                key: key.to_string(),
                action,
                generation,
            });
        }
        if dry_run {
            tx.rollback().map_err(sqlite)?;
            return Ok(out);
        }
        tx.commit().map_err(sqlite)?;
        if !emitted.is_empty() {
            self.spec_epoch.fetch_add(1, Ordering::AcqRel);
        }
        // Publish while still holding the connection: watchers must see changes in
        // resourceVersion order (they skip versions they have passed).
        for c in emitted {
            let _ = self.changes.send(c);
        }
        drop(conn);
        Ok(out)
    }

    /// Changes the status (or server metadata) of an object with `f`, leaving spec and
    /// generation alone. Returns the object after the change, `None` if it is gone.
    ///
    /// # Errors
    /// Storage failures.
    pub fn update(
        &self,
        key: &ObjectKey,
        f: impl FnOnce(&mut Resource),
    ) -> Result<Option<Resource>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sqlite)?;
        let (kind, org, name) = key_parts(key);
        let Some(before) = read(&tx, key)? else {
            return Ok(None);
        };
        let mut next = before.clone();
        f(&mut next);
        // Spec and generation are not this call's to change.
        copy_spec(&before, &mut next);
        if next == before {
            return Ok(Some(before));
        }
        let rv = current_version(&tx)? + 1;
        next.metadata_mut().resource_version = Some(rv.to_string());
        let gone =
            next.metadata().deletion_timestamp.is_some() && next.metadata().finalizers.is_empty();
        let phase = |r: &Resource| match r {
            Resource::Workspace(w) => w.status.as_ref().and_then(|s| s.phase.clone()),
            _ => None,
        };
        let (was, is) = (
            phase(&before),
            if gone {
                Some(GONE.to_string())
            } else {
                phase(&next)
            },
        );
        if let (Resource::Workspace(_), Some(is)) = (&next, is)
            && was.as_ref() != Some(&is)
        {
            tx.execute(
                "INSERT INTO phases (org, name, phase, at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![org, name, is, now_ms() as i64],
            )
            .map_err(sqlite)?;
        }
        let change = if gone {
            tx.execute(
                "DELETE FROM objects WHERE kind = ?1 AND org = ?2 AND name = ?3",
                params![kind, org, name],
            )
            .map_err(sqlite)?;
            log_change(&tx, rv, ChangeType::Deleted, &next)?
        } else {
            let body =
                serde_json::to_string(&next).map_err(|e| StoreError::Sqlite(e.to_string()))?;
            tx.execute(
                "UPDATE objects SET resource_version = ?4, body = ?5 WHERE kind = ?1 AND org = ?2 AND name = ?3",
                params![kind, org, name, rv as i64, body],
            )
            .map_err(sqlite)?;
            log_change(&tx, rv, ChangeType::Modified, &next)?
        };
        tx.commit().map_err(sqlite)?;
        if gone {
            self.spec_epoch.fetch_add(1, Ordering::AcqRel);
        }
        // Publish in resourceVersion order (see `apply`).
        let _ = self.changes.send(change);
        drop(conn);
        Ok(if gone { None } else { Some(next) })
    }

    /// Requests deletion: marks the object (finalizers then run), or removes it at once
    /// when it has none. Returns whether it existed.
    ///
    /// # Errors
    /// Storage failures.
    pub fn delete(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        if self.get(key)?.is_none() {
            return Ok(false);
        }
        self.update(key, |r| {
            let m = r.metadata_mut();
            if m.deletion_timestamp.is_none() {
                m.deletion_timestamp = Some(now());
            }
        })?;
        Ok(true)
    }

    /// Removes a finalizer; the object disappears if it was being deleted and this was
    /// its last one.
    ///
    /// # Errors
    /// Storage failures.
    pub fn remove_finalizer(&self, key: &ObjectKey, finalizer: &str) -> Result<(), StoreError> {
        self.update(key, |r| {
            r.metadata_mut().finalizers.retain(|f| f != finalizer)
        })?;
        Ok(())
    }

    /// Workspaces of `org` Running with no sleep wish (what an eviction chooses among),
    /// found through the `objects_awake` index: only those are read.
    ///
    /// # Errors
    /// Storage failures.
    pub fn list_running(&self, org: &str) -> Result<Vec<Resource>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(LIST_RUNNING).map_err(sqlite)?;
        let bodies = stmt
            .query_map([org], |r| r.get::<_, String>(0))
            .map_err(sqlite)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sqlite)?;
        let mut running: Vec<Resource> =
            bodies.iter().map(|b| decode(b)).collect::<Result<_, _>>()?;
        running.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(running)
    }

    /// Workspaces of `org` that are awake or being started (phase Starting, Waking or
    /// Running, no sleep wish), `except` one; counted in SQL through the `objects_awake`
    /// index, without reading them.
    ///
    /// # Errors
    /// Storage failures.
    pub fn count_awake(&self, org: &str, except: &str) -> Result<u32, StoreError> {
        self.conn()
            .query_row(COUNT_AWAKE, params![org, except], |r| r.get(0))
            .map_err(sqlite)
    }

    /// Changes after `rv`, in order.
    ///
    /// # Errors
    /// Storage failures.
    pub fn changes_since(&self, rv: u64) -> Result<Vec<Change>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT rv, type, body FROM changes WHERE rv > ?1 ORDER BY rv")
            .map_err(sqlite)?;
        let rows = stmt
            .query_map([rv as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(sqlite)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sqlite)?;
        Ok(rows
            .into_iter()
            .map(|(rv, t, body)| Change {
                change: match t.as_str() {
                    "ADDED" => ChangeType::Added,
                    "DELETED" => ChangeType::Deleted,
                    _ => ChangeType::Modified,
                },
                object: serde_json::from_str(&body).unwrap_or(Value::Null),
                resource_version: rv as u64,
            })
            .collect())
    }

    /// Live changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// The phase transitions of the workspaces of `org` (all when `None`) up to `until_ms`,
    /// by workspace, oldest first: each workspace's last transition before `since_ms` (the
    /// phase it was in when the window opened) and every one in the window.
    ///
    /// # Errors
    /// Storage failures.
    pub fn phase_history(
        &self,
        org: Option<&str>,
        since_ms: u64,
        until_ms: u64,
    ) -> Result<Vec<PhaseTransition>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT org, name, phase, at_ms FROM phases p
                  WHERE (?1 IS NULL OR org = ?1) AND at_ms <= ?3
                    AND (at_ms >= ?2 OR id = (SELECT max(id) FROM phases q
                          WHERE q.org = p.org AND q.name = p.name AND q.at_ms < ?2))
                  ORDER BY org, name, id",
            )
            .map_err(sqlite)?;
        let rows = stmt
            .query_map(params![org, since_ms as i64, until_ms as i64], |r| {
                Ok(PhaseTransition {
                    organization: r.get(0)?,
                    workspace: r.get(1)?,
                    phase: r.get(2)?,
                    at_ms: r.get::<_, i64>(3)?.max(0) as u64,
                })
            })
            .map_err(sqlite)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sqlite)?;
        Ok(rows)
    }

    /// Records a reconcile event for `describe`.
    pub fn record_event(&self, key: &ObjectKey, event_type: &str, reason: &str, message: &str) {
        let (kind, org, name) = key_parts(key);
        let result = self.conn().execute(
            "INSERT INTO events (time, kind, org, name, type, reason, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![now(), kind, org, name, event_type, reason, message],
        );
        if let Err(e) = result {
            tracing::warn!(error = %e, "recording an event failed");
        }
    }

    /// The latest `limit` events of an object, oldest first.
    ///
    /// # Errors
    /// Storage failures.
    pub fn events(&self, key: &ObjectKey, limit: u32) -> Result<Vec<ObjectEvent>, StoreError> {
        let (kind, org, name) = key_parts(key);
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT time, type, reason, message FROM events WHERE kind = ?1 AND org = ?2 AND name = ?3 ORDER BY id DESC LIMIT ?4")
            .map_err(sqlite)?;
        let mut rows = stmt
            .query_map(params![kind, org, name, limit], |r| {
                Ok(ObjectEvent {
                    time: r.get(0)?,
                    event_type: r.get(1)?,
                    reason: r.get(2)?,
                    message: r.get(3)?,
                })
            })
            .map_err(sqlite)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sqlite)?;
        rows.reverse();
        Ok(rows)
    }
}

/// One stored object, read on `conn` (a transaction, to read what it will write).
fn read(conn: &Connection, key: &ObjectKey) -> Result<Option<Resource>, StoreError> {
    let (kind, org, name) = key_parts(key);
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM objects WHERE kind = ?1 AND org = ?2 AND name = ?3",
            params![kind, org, name],
            |r| r.get(0),
        )
        .optional()
        .map_err(sqlite)?;
    body.map(|b| decode(&b)).transpose()
}

/// The store's current resource version, as seen on `conn`.
fn current_version(conn: &Connection) -> Result<u64, StoreError> {
    conn.query_row("SELECT COALESCE(MAX(rv), 0) FROM changes", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|v| v as u64)
    .map_err(sqlite)
}

fn decode(body: &str) -> Result<Resource, StoreError> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Resource::from_trusted_json(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn log_change(
    tx: &rusqlite::Transaction<'_>,
    rv: u64,
    change: ChangeType,
    object: &Resource,
) -> Result<Change, StoreError> {
    let object = serde_json::to_value(object).map_err(|e| StoreError::Sqlite(e.to_string()))?;
    let t = match change {
        ChangeType::Added => "ADDED",
        ChangeType::Modified => "MODIFIED",
        ChangeType::Deleted => "DELETED",
    };
    tx.execute(
        "INSERT INTO changes (rv, type, body) VALUES (?1, ?2, ?3)",
        params![rv as i64, t, object.to_string()],
    )
    .map_err(sqlite)?;
    Ok(Change {
        change,
        object,
        resource_version: rv,
    })
}

/// Keeps the server-owned fields of `current` on an applied `next`.
fn copy_server_fields(current: &Resource, next: &mut Resource, generation: i64) {
    let cm = current.metadata().clone();
    let m = next.metadata_mut();
    m.generation = Some(generation);
    m.uid = cm.uid;
    m.creation_timestamp = cm.creation_timestamp;
    m.deletion_timestamp = cm.deletion_timestamp;
    m.finalizers = cm.finalizers;
    match (current, next) {
        (Resource::Organization(c), Resource::Organization(n)) => n.status = c.status.clone(),
        (Resource::Team(c), Resource::Team(n)) => n.status = c.status.clone(),
        (Resource::Workspace(c), Resource::Workspace(n)) => n.status = c.status.clone(),
        (Resource::Migration(c), Resource::Migration(n)) => n.status = c.status.clone(),
        _ => {}
    }
}

/// Puts `before`'s spec, generation and labels back on `next`.
fn copy_spec(before: &Resource, next: &mut Resource) {
    let bm = before.metadata().clone();
    let m = next.metadata_mut();
    m.generation = bm.generation;
    m.labels = bm.labels;
    match (before, next) {
        (Resource::Organization(b), Resource::Organization(n)) => n.spec = b.spec.clone(),
        (Resource::Team(b), Resource::Team(n)) => n.spec = b.spec.clone(),
        (Resource::Workspace(b), Resource::Workspace(n)) => n.spec = b.spec.clone(),
        (Resource::Migration(b), Resource::Migration(n)) => n.spec = b.spec.clone(),
        _ => {}
    }
}

fn clear_status(r: &mut Resource) {
    match r {
        Resource::Organization(o) => o.status = None,
        Resource::Team(o) => o.status = None,
        Resource::Workspace(o) => o.status = None,
        Resource::Migration(o) => o.status = None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn workspace(name: &str) -> Resource {
        let text = format!(
            "apiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {{name: {name}, organization: o, team: t}}\nspec: {{owner: u}}\n"
        );
        let (docs, diags) = coditect_specs::parse_str("w.yaml", Path::new("."), &text);
        assert!(diags.is_empty(), "{diags:?}");
        docs.into_iter().next().unwrap().resource
    }

    #[test]
    fn the_awake_are_counted_and_listed_through_the_index_without_reading_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let all: Vec<Resource> = ["a", "b", "c", "d"].iter().map(|n| workspace(n)).collect();
        store.apply(&all, false).unwrap();
        let set = |name: &str, phase: &str, asleep: bool| {
            store
                .update(&workspace(name).key(), |r| {
                    if let Resource::Workspace(w) = r {
                        let s = w.status.get_or_insert_with(Default::default);
                        s.phase = Some(phase.into());
                        s.sleep = asleep.then(|| coditect_specs::SleepStatus {
                            reason: "idle".into(),
                            by: "auto-sleep".into(),
                            requested_at: "2026-12-07T00:00:00Z".into(),
                            asleep_since: None,
                            blocked: None,
                        });
                    }
                })
                .unwrap();
        };
        set("a", "Running", false);
        set("b", "Running", true); // to sleep: not awake any more
        set("c", "Starting", false);
        set("d", "Asleep", true);
        assert_eq!(store.count_awake("o", "none").unwrap(), 2);
        assert_eq!(store.count_awake("o", "a").unwrap(), 1);
        let running: Vec<String> = store
            .list_running("o")
            .unwrap()
            .iter()
            .map(|r| r.name().to_string())
            .collect();
        assert_eq!(running, vec!["a"]);
        for sql in [COUNT_AWAKE, LIST_RUNNING] {
            let plan: String = store
                .conn()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(
                    rusqlite::params_from_iter(["o", "none"].iter().take(sql.matches('?').count())),
                    |r| r.get::<_, String>(3),
                )
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .join("; ");
            assert!(plan.contains("USING INDEX objects_awake"), "{sql}: {plan}");
        }
    }
}
