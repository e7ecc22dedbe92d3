//! One user's steps, each taken from the phase their record is in and ending with the
//! record written: create the workspace (Pending → Copying), copy and import (→ Synced),
//! verify (→ Verified), cut over (→ CuttingOver → CutOver), complete, roll back. Each is
//! idempotent — a copy skips what is in place, an import skips what was imported, a route
//! set twice is set once — so a control plane killed in the middle of one takes it again.

use std::sync::Arc;
use std::time::Instant;

use coditect_control_plane::delegated::Plane;
use coditect_control_plane::gateway::users::Route;
use coditect_specs::{Kind, Migration, ObjectKey, Resource, UserPhase};
use serde_json::{Value, json};

use crate::copy::{Copied, copy_tree};
use crate::destination::Instance;
use crate::error::MigrateError;
use crate::export::V1Export;
use crate::plan::{UserPlan, plan_user};
use crate::record::UserRecord;
use crate::verify::{Grade, compare};

/// The label on what a migration created: its name.
pub const MIGRATION_LABEL: &str = "coditect.io/migration";
/// The label on a migrated workspace: the v1 user's login.
pub const V1_USER_LABEL: &str = "coditect.io/v1-user";

/// What a step needs besides the record.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The control plane.
    pub plane: Plane,
    /// For the workspaces' APIs.
    pub http: reqwest::Client,
    /// The migration, as stored.
    pub migration: Arc<Migration>,
    /// Its export, opened.
    pub export: V1Export,
    /// What time it is (RFC 3339), from the reconciler's clock.
    pub now: String,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stepped {
    /// The record moved on (or was rewritten).
    Moved,
    /// Nothing to do yet (a workspace starting, a promotion not given).
    Waiting,
}

fn failed(r: &mut UserRecord, reason: impl Into<String>) -> Stepped {
    r.phase = UserPhase::Failed;
    r.reasons = vec![reason.into()];
    Stepped::Moved
}

/// The v2 name of a v1 agent's provider.
fn provider(agent: &str) -> &'static str {
    match agent {
        "claude" => "anthropic",
        "gemini" => "google",
        "codex" => "openai",
        "kimi" => "moonshot",
        _ => "offline",
    }
}

/// Pending → Copying: the user's organization, team and workspace exist (made here when
/// missing, labelled with the migration), and `/u/{login}/` routes to v1.
///
/// # Errors
/// The export or the store did not answer.
pub async fn create(cx: &StepContext, r: &mut UserRecord) -> Result<Stepped, MigrateError> {
    let m = &cx.migration;
    let read = cx.export.user(&r.user).await?;
    if read.sandboxes.is_empty() {
        r.problems = read.problems;
        return Ok(failed(
            r,
            "no sandbox of this user could be read from the export (see problems)",
        ));
    }
    let store = &cx.plane.store;
    let org = r.workspace.organization.clone().unwrap_or_default();
    let mut objects = Vec::new();
    let labels = json!({ MIGRATION_LABEL: m.metadata.name });
    let org_key = ObjectKey {
        kind: Kind::Organization,
        organization: None,
        name: org.clone(),
    };
    if store.get(&org_key).map_err(MigrateError::store)?.is_none() {
        objects.push(
            json!({"apiVersion": coditect_specs::API_VERSION, "kind": "Organization",
            "metadata": {"name": org, "labels": labels}, "spec": {}}),
        );
    }
    let team_key = ObjectKey {
        kind: Kind::Team,
        organization: Some(org.clone()),
        name: r.team.clone(),
    };
    if store.get(&team_key).map_err(MigrateError::store)?.is_none() {
        objects.push(
            json!({"apiVersion": coditect_specs::API_VERSION, "kind": "Team",
            "metadata": {"name": r.team, "organization": org, "labels": labels}, "spec": {}}),
        );
    }
    match store.get(&r.workspace).map_err(MigrateError::store)? {
        Some(existing) => {
            let ours = existing.metadata().labels.get(MIGRATION_LABEL) == Some(&m.metadata.name);
            if !ours {
                return Ok(failed(
                    r,
                    format!(
                        "{} exists and was not made by this migration: change spec.target.workspaceName",
                        r.workspace
                    ),
                ));
            }
        }
        None => {
            let mut agents: Vec<String> = read
                .sandboxes
                .values()
                .map(|s| s.meta.agent.clone())
                .collect();
            agents.sort();
            agents.dedup();
            let agents: Vec<Value> = agents
                .iter()
                .map(|a| {
                    match m.spec.target.agents.iter().find(|s| s.name == *a) {
                        Some(spec) => serde_json::to_value(spec).unwrap_or(Value::Null),
                        // No credentials here: the agent runs offline until it is given some.
                        None => {
                            json!({"name": a, "provider": provider(a), "offlineFallback": true})
                        }
                    }
                })
                .collect();
            let mut spec = json!({"owner": r.login, "agents": agents});
            if let Some(res) = &m.spec.target.resources {
                spec["resources"] = serde_json::to_value(res).unwrap_or(Value::Null);
            }
            objects.push(
                json!({"apiVersion": coditect_specs::API_VERSION, "kind": "Workspace",
                "metadata": {"name": r.workspace.name, "organization": org, "team": r.team,
                    "labels": {MIGRATION_LABEL: m.metadata.name, V1_USER_LABEL: r.login}},
                "spec": spec}),
            );
        }
    }
    if !objects.is_empty() {
        let planned = match coditect_control_plane::apply::plan(store, objects) {
            Ok(p) => p,
            Err(coditect_control_plane::apply::ApplyError::Invalid(v)) => {
                let why: Vec<String> = v
                    .iter()
                    .map(|v| format!("{}: {}", v.path, v.message))
                    .collect();
                return Ok(failed(
                    r,
                    format!("its workspace cannot be made: {}", why.join("; ")),
                ));
            }
            Err(e) => return Err(MigrateError::Destination(e.to_string())),
        };
        store.apply(&planned, false).map_err(MigrateError::store)?;
    }
    if let Some(endpoint) = &m.spec.source.endpoint
        && cx.plane.users.current(&r.login).is_none()
    {
        cx.plane
            .users
            .set(
                &r.login,
                Route::V1 {
                    endpoint: endpoint.clone(),
                },
            )
            .map_err(MigrateError::store)?;
    }
    r.problems = read.problems;
    r.phase = UserPhase::Copying;
    Ok(Stepped::Moved)
}

/// Writes `r` to the store now (the reconciler writes it after every step as well).
///
/// # Errors
/// The store did not answer.
pub fn save(cx: &StepContext, r: &mut UserRecord) -> Result<(), MigrateError> {
    r.updated_at = cx.now.clone();
    let value = serde_json::to_value(&*r).map_err(MigrateError::store)?;
    cx.plane
        .store
        .put_migration_user(&cx.migration.metadata.name, &r.login, &value)
        .map_err(MigrateError::store)
}

/// The user's workspace instance when it serves; woken (and `None`) when it sleeps.
///
/// # Errors
/// The store did not answer.
pub async fn instance(cx: &StepContext, key: &ObjectKey) -> Result<Option<Instance>, MigrateError> {
    let Some(Resource::Workspace(ws)) = cx.plane.store.get(key).map_err(MigrateError::store)?
    else {
        return Ok(None);
    };
    if coditect_control_plane::sleep::wants_sleep(&ws) {
        coditect_control_plane::sleep::request_wake(&*cx.plane.store, key)
            .await
            .map_err(MigrateError::store)?;
        let _ = cx.plane.nudge.send(key.clone());
        return Ok(None);
    }
    let status = ws.status.unwrap_or_default();
    let ready = status.phase.as_deref() == Some("Running")
        && coditect_control_plane::conditions::is_true(&status.conditions, "Ready");
    match (ready, status.endpoint, cx.plane.instances.token(key)) {
        (true, Some(endpoint), Some(token)) => {
            Ok(Some(Instance::new(cx.http.clone(), &endpoint, token)?))
        }
        _ => Ok(None),
    }
}

/// What a sync did.
struct Synced {
    plan: UserPlan,
    /// `(imported, skipped)` transcript lines.
    imported: (u64, u64),
}

/// Copies what is not in place yet and imports transcript lines not imported yet; the
/// user planned from the export as it is now. A v2 file that no longer holds what the
/// last sync put there is named (and put back).
async fn sync(cx: &StepContext, r: &mut UserRecord, to: &Instance) -> Result<Synced, MigrateError> {
    use crate::destination::Destination as _;
    let plan = plan_user(&cx.export, &cx.migration, &r.user).await?;
    let now = to.hashes().await?;
    let tampered: Vec<String> = r
        .at_sync
        .iter()
        .filter(|(path, sha)| now.get(*path).is_some_and(|n| n != *sha))
        .map(|(path, _)| path.clone())
        .collect();
    let copied = copy_tree(&cx.export, &plan, to).await;
    let released = to.release().await;
    let Copied {
        bytes,
        problems,
        placed,
        ..
    } = copied?;
    released?;
    let body = crate::transcript::import_body(&r.login, &plan.transcripts);
    let imported = to.import(&body).await?;
    r.files = plan.files;
    r.conflicts = plan.conflicts.len();
    r.bytes_copied += bytes;
    r.events = imported.0 + imported.1;
    r.problems = plan.problems.clone();
    r.problems.extend(problems);
    r.newest_sandbox = plan.newest_sandbox.clone();
    r.synced_at = Some(cx.now.clone());
    // What was put there (the bytes copied, when v1 changed a file since the plan).
    r.at_sync = placed;
    for path in tampered {
        if !r.tampered.contains(&path) {
            r.tampered.push(path);
        }
    }
    Ok(Synced { plan, imported })
}

/// Copying → Synced (once the workspace serves).
///
/// # Errors
/// The export or the workspace did not answer (the step is taken again).
pub async fn copy(cx: &StepContext, r: &mut UserRecord) -> Result<Stepped, MigrateError> {
    let Some(to) = instance(cx, &r.workspace).await? else {
        return Ok(Stepped::Waiting);
    };
    sync(cx, r, &to).await?;
    r.phase = UserPhase::Synced;
    Ok(Stepped::Moved)
}

/// Grades what `to` holds against the plan; the transcripts count when an import of
/// every line finds each one there; a file changed in v2 behind the migration's back
/// makes it Investigate at least.
async fn grade(r: &mut UserRecord, synced: &Synced, to: &Instance) -> Result<Grade, MigrateError> {
    use crate::destination::Destination as _;
    let (plan, imported) = (&synced.plan, synced.imported);
    let mut v = compare(plan, &to.hashes().await?);
    if !r.tampered.is_empty() {
        v.reasons.push(format!(
            "{} file(s) changed in v2 after they were copied, before cutover (put back from v1): {}",
            r.tampered.len(),
            r.tampered.join(", ")
        ));
        if v.grade == Grade::Perfect {
            v.grade = Grade::Investigate;
        }
    }
    let lines: usize = plan.transcripts.iter().map(|t| t.lines.len()).sum();
    let in_log = imported.0 + imported.1;
    if in_log != lines as u64 {
        v.reasons.push(format!(
            "{lines} transcript line(s) in v1, {in_log} imported"
        ));
        if v.grade == Grade::Perfect {
            v.grade = Grade::Investigate;
        }
    }
    r.grade = Some(v.grade);
    r.reasons = v.reasons;
    Ok(v.grade)
}

/// Synced → Verified: synced once more, then every file's SHA-256 compared with v1 (the
/// merge rules applied) and every transcript line found in the log.
///
/// # Errors
/// The export or the workspace did not answer.
pub async fn verify(cx: &StepContext, r: &mut UserRecord) -> Result<Stepped, MigrateError> {
    let Some(to) = instance(cx, &r.workspace).await? else {
        return Ok(Stepped::Waiting);
    };
    let synced = sync(cx, r, &to).await?;
    grade(r, &synced, &to).await?;
    r.phase = UserPhase::Verified;
    Ok(Stepped::Moved)
}

/// Verified (promoted) or CuttingOver → CutOver: the reverse path proven, the user's
/// requests held, what changed in v1 copied, verified, the route flipped, the requests
/// released; the pause measured. Abandoned (the user stays on v1, Verified) when the
/// grade got worse or the pause would pass `maxPause`.
///
/// # Errors
/// The export, the workspace or the store did not answer; a held user is released to v1
/// first.
pub async fn cut_over(cx: &StepContext, r: &mut UserRecord) -> Result<Stepped, MigrateError> {
    let m = &cx.migration;
    let to_v2 = Route::V2 {
        workspace: r.workspace.clone(),
    };
    let users = &cx.plane.users;
    if users.current(&r.login) == Some(to_v2.clone()) {
        // Flipped before a crash; only the record was not written.
        r.phase = UserPhase::CutOver;
        r.cut_over_at.get_or_insert_with(|| cx.now.clone());
        return Ok(Stepped::Moved);
    }
    if let Err(e) = crate::rollback::check(&m.spec.source.export).await {
        r.phase = UserPhase::Verified;
        r.reasons = vec![format!(
            "not cut over: the rollback path does not work ({e}); fix the export's permissions"
        )];
        return Ok(Stepped::Moved);
    }
    let Some(to) = instance(cx, &r.workspace).await? else {
        return Ok(Stepped::Waiting);
    };
    r.phase = UserPhase::CuttingOver;
    save(cx, r)?;
    // Whatever happens from here, a hold never outlives this step: an early return or an
    // error lets the requests go where the route points (still v1).
    struct Hold<'a> {
        users: &'a coditect_control_plane::gateway::users::UserRoutes,
        login: &'a str,
        active: bool,
    }
    impl Drop for Hold<'_> {
        fn drop(&mut self) {
            if self.active {
                self.users.unhold(self.login);
            }
        }
    }
    let login = r.login.clone();
    let mut hold = Hold {
        users,
        login: &login,
        active: users.hold(&login),
    };
    let started = Instant::now();
    let outcome = async {
        let synced = sync(cx, r, &to).await?;
        let grade = grade(r, &synced, &to).await?;
        Ok::<_, MigrateError>((synced.plan, grade))
    }
    .await;
    let abandon = |why: String, r: &mut UserRecord| {
        r.phase = UserPhase::Verified;
        r.attempts += 1;
        r.last_attempt_at = Some(cx.now.clone());
        r.reasons.push(why);
        Stepped::Moved
    };
    let plan = match outcome {
        Ok((plan, _)) if r.may_cut_over(m.spec.verification.accept_investigate) => plan,
        Ok(_) => {
            return Ok(abandon(
                "not cut over: the last sync graded it below what may be cut over".into(),
                r,
            ));
        }
        Err(e) => {
            abandon(format!("not cut over: {e}"), r);
            return Err(e);
        }
    };
    let took = started.elapsed();
    let max = m.spec.cutover.max_pause.to_std();
    if took > max {
        return Ok(abandon(
            format!(
                "not cut over: the last sync held requests {:.0} ms, more than maxPause {}; tried again later",
                took.as_secs_f64() * 1e3,
                m.spec.cutover.max_pause
            ),
            r,
        ));
    }
    // What a rollback needs is durable before the flip: a crash right after it finds the
    // route on v2 and the tree it was cut over with.
    r.at_cutover = Some(plan.merged);
    r.routed_back = false;
    save(cx, r)?;
    let paused = users.release(&login, to_v2).map_err(MigrateError::store)?;
    hold.active = false;
    r.pause_ms = Some(paused.max(took).as_secs_f64() * 1e3);
    r.phase = UserPhase::CutOver;
    r.cut_over_at = Some(cx.now.clone());
    Ok(Stepped::Moved)
}

/// A rollback: the route flipped back to v1 at once (timed), then what the user changed
/// in v2 since cutover written back into the v1 layout. A user not cut over yet simply
/// stays on v1.
///
/// # Errors
/// The store, the workspace or the export did not answer; the flip stays made and the
/// write-back is taken again.
pub async fn roll_back(cx: &StepContext, r: &mut UserRecord) -> Result<Stepped, MigrateError> {
    let m = &cx.migration;
    match r.phase {
        UserPhase::CutOver | UserPhase::CuttingOver => {}
        UserPhase::Completed | UserPhase::RolledBack | UserPhase::Failed => {
            r.reasons = vec![format!("not rolled back: the user is {}", r.phase)];
            return Ok(Stepped::Moved);
        }
        _ => {
            r.phase = UserPhase::RolledBack;
            r.reasons = vec!["rolled back before cutover: the user stays on v1".into()];
            return Ok(Stepped::Moved);
        }
    }
    if !r.routed_back {
        let started = Instant::now();
        match &m.spec.source.endpoint {
            Some(endpoint) => cx.plane.users.set(
                &r.login,
                Route::V1 {
                    endpoint: endpoint.clone(),
                },
            ),
            // No v1 endpoint to send them to: `/u/{login}/` is routed nowhere again.
            None => cx.plane.users.forget(&r.login),
        }
        .map_err(MigrateError::store)?;
        r.rollback_ms = Some(started.elapsed().as_secs_f64() * 1e3);
        r.routed_back = true;
        // Durable at once: from here the reconciler finishes the rollback by itself
        // (the write-back), whatever else is asked meanwhile.
        save(cx, r)?;
    }
    let Some(at_cutover) = r.at_cutover.clone() else {
        r.phase = UserPhase::RolledBack;
        return Ok(Stepped::Moved);
    };
    let Some(to) = instance(cx, &r.workspace).await? else {
        return Ok(Stepped::Waiting);
    };
    let newest = r.newest_sandbox.clone().unwrap_or_default();
    let back =
        crate::rollback::write_back(&m.spec.source.export, &r.user.id, &at_cutover, &newest, &to)
            .await?;
    r.written_back = Some(back.written.len() + back.deleted.len());
    r.problems.extend(back.problems);
    r.phase = UserPhase::RolledBack;
    r.reasons = vec![format!(
        "rolled back: {} file(s) written back to v1, {} deleted there",
        back.written.len(),
        back.deleted.len()
    )];
    Ok(Stepped::Moved)
}
