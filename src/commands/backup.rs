//! `coditect backup list|verify|restore WORKSPACE`: what a workspace's bucket holds, a
//! full check of it, and a restore into a folder — for operators, and for the day the
//! machine is gone (the bucket is found in the workspace's status; `--bucket` when the
//! control plane is gone too).

use std::path::Path;

use coditect_runtime::layout::Layout;
use coditect_runtime::sync::Bucket;
use coditect_runtime::sync::replicator::SyncTarget;
use coditect_runtime::sync::restore::{RestoreReport, manifest, restore, verify_chain};
use coditect_specs::Kind;
use serde_json::json;

use crate::cli::{BackupArgs, BackupCommand, BackupSource};
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured, print_table};

pub async fn run(
    format: OutputFormat,
    remote: &super::Remote,
    cmd: &BackupCommand,
) -> Result<(), Failure> {
    match cmd {
        BackupCommand::List(args) => list(format, &target(remote, args).await?).await,
        BackupCommand::Verify(args) => verify(format, &target(remote, args).await?).await,
        BackupCommand::Restore(args) => {
            let to_time = match &args.to_time {
                Some(t) => Some(
                    humantime::parse_rfc3339_weak(t)
                        .map_err(|e| Failure::Refused(format!("--to-time {t:?}: {e} (expected RFC 3339, e.g. 2026-11-24T10:00:00Z)")))?
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                ),
                None => None,
            };
            let t = target(remote, &args.backup).await?;
            let report = restore_into(&t, &args.to, to_time).await?;
            if matches!(format, OutputFormat::Json | OutputFormat::Yaml) {
                return Ok(print_structured(format, &report)?);
            }
            outln!(
                "restored {} into {}: generation {}, {} WAL batch(es), events up to seq {} ({}), {} project file(s), {} object(s), {} bytes",
                t.prefix,
                args.to.display(),
                report.generation,
                report.batches,
                report.last_seq,
                report.last_event_ts.as_deref().unwrap_or("-"),
                report.files,
                report.objects,
                report.bytes
            );
            Ok(())
        }
    }
}

/// The workspace's bucket and prefix: with `--bucket`, from the bucket alone (no control
/// plane needed: the disaster this command exists for); else from the workspace's status.
async fn target(remote: &super::Remote, args: &BackupArgs) -> Result<SyncTarget, Failure> {
    if let Some(url) = &args.bucket {
        return find_in_bucket(url, &args.workspace, args.org.as_deref()).await;
    }
    let ws = remote
        .client()?
        .find(Kind::Workspace, &args.workspace, args.org.as_deref())
        .await?;
    let m = ws.metadata();
    let status = ws.status_json();
    let url = match args.from {
        BackupSource::Primary => status["bucket"].as_str().map(str::to_string).ok_or_else(|| {
            Failure::Refused(format!(
                "workspace {} has not reported a bucket yet (it has never started); pass --bucket",
                m.name
            ))
        })?,
        BackupSource::Mirror => status["mirror"].as_str().map(str::to_string).ok_or_else(|| {
            Failure::Refused(format!(
                "workspace {} reports no mirror (its organization sets no storage.mirror, or it has never started); pass --bucket with the mirror's URL",
                m.name
            ))
        })?,
    };
    let spec = ws.spec_json();
    let prefix = Layout::relative(
        m.organization.as_deref().unwrap_or_default(),
        m.team.as_deref().unwrap_or_default(),
        spec["owner"].as_str().unwrap_or_default(),
        &m.name,
    );
    let bucket = Bucket::open(&url)
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))?;
    Ok(SyncTarget {
        bucket,
        prefix: prefix.display().to_string(),
    })
}

/// The workspace `name` in the bucket at `url`: the one manifest under
/// `organizations/{org}/…/workspaces/{name}/`.
async fn find_in_bucket(url: &str, name: &str, org: Option<&str>) -> Result<SyncTarget, Failure> {
    let bucket = Bucket::open(url)
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))?;
    let scope = match org {
        Some(org) => format!("organizations/{org}/"),
        None => "organizations/".to_string(),
    };
    let suffix = format!(
        "/workspaces/{name}/{}",
        coditect_runtime::sync::manifest::MANIFEST
    );
    let found: Vec<String> = bucket
        .list(&scope)
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))?
        .into_iter()
        .filter_map(|o| {
            o.name
                .strip_suffix(&suffix)
                .map(|p| format!("{p}/workspaces/{name}"))
        })
        .collect();
    match found.as_slice() {
        [prefix] => Ok(SyncTarget {
            bucket,
            prefix: prefix.clone(),
        }),
        [] => Err(Failure::Refused(format!(
            "no workspace {name} in {url}{}",
            org.map(|o| format!(" under organization {o}"))
                .unwrap_or_default()
        ))),
        many => Err(Failure::Refused(format!(
            "workspace {name} is in {url} {} times ({}); say which with --org",
            many.len(),
            many.join(", ")
        ))),
    }
}

async fn list(format: OutputFormat, t: &SyncTarget) -> Result<(), Failure> {
    let m = manifest(t)
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))?
        .ok_or_else(|| no_backup(t))?;
    if matches!(format, OutputFormat::Json | OutputFormat::Yaml) {
        return Ok(print_structured(format, &m)?);
    }
    let at = |ms: u64| coditect_runtime::clock::rfc3339(ms);
    outln!("Bucket:     {}/{}", t.bucket.url(), t.prefix);
    outln!(
        "Owner:      instance {} on {} (pid {}), since {}",
        m.owner.instance,
        m.owner.host,
        m.owner.pid,
        at(m.owner.since_ms)
    );
    outln!("Updated:    {}", at(m.updated_ms));
    let mut rows = Vec::new();
    for g in std::iter::once(m.current_generation()).chain(m.previous.clone()) {
        let bytes: u64 = g.snapshots.values().map(|s| s.size).sum::<u64>()
            + g.wal.iter().map(|w| w.object.size).sum::<u64>();
        rows.push(vec![
            g.generation.to_string(),
            at(g.snapshot_ms),
            g.snapshots.len().to_string(),
            g.wal.len().to_string(),
            g.wal.last().map_or("-".into(), |w| at(w.ts_ms)),
            bytes.to_string(),
        ]);
    }
    print_table(
        &[
            "GENERATION",
            "SNAPSHOT",
            "DATABASES",
            "WAL BATCHES",
            "LAST BATCH",
            "BYTES",
        ],
        &rows,
    );
    outln!(
        "Events:     {} segment(s), seq 1..{}",
        m.events.len(),
        m.last_seq()
    );
    outln!(
        "Projects:   {} file(s), {} bytes",
        m.projects.len(),
        m.projects.values().map(|p| p.size).sum::<u64>()
    );
    Ok(())
}

async fn verify(format: OutputFormat, t: &SyncTarget) -> Result<(), Failure> {
    let scratch = tempfile::tempdir().map_err(anyhow::Error::from)?;
    let dest = scratch.path().join("workspace");
    let report = restore_into(t, &dest, None).await?;
    let mut databases = Vec::new();
    for name in coditect_runtime::db::NAMES {
        let file = dest.join("databases").join(format!("{name}.db"));
        let check = rusqlite::Connection::open(&file)
            .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)))
            .unwrap_or_else(|e| e.to_string());
        databases.push((name.to_string(), check));
    }
    let chain = verify_chain(&dest.join("sessions"));
    let ok = databases.iter().all(|(_, c)| c == "ok") && chain.is_ok();
    if matches!(format, OutputFormat::Json | OutputFormat::Yaml) {
        print_structured(
            format,
            &json!({"ok": ok, "restore": report, "databases": databases, "chain": chain.as_ref().map(|c| json!({"events": c.events, "head": c.head})).map_err(|e| e.to_string())}),
        )?;
    } else {
        outln!(
            "objects:  {} read, every SHA-256 matches the manifest ({} bytes)",
            report.objects,
            report.bytes
        );
        for (name, check) in &databases {
            outln!("database: {name:<16} integrity_check {check}");
        }
        match &chain {
            Ok(c) => outln!(
                "events:   {} events, hash chain intact (head {})",
                c.events,
                &c.head[..16.min(c.head.len())]
            ),
            Err(e) => outln!("events:   hash chain BROKEN: {e}"),
        }
        outln!(
            "{}",
            if ok {
                "backup verified"
            } else {
                "backup FAILED verification"
            }
        );
    }
    if ok {
        Ok(())
    } else {
        Err(Failure::InvalidInput)
    }
}

/// Restores with a progress bar on a terminal.
async fn restore_into(
    t: &SyncTarget,
    dest: &Path,
    to_time: Option<u64>,
) -> Result<RestoreReport, Failure> {
    if dest.exists()
        && std::fs::read_dir(dest)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Failure::Refused(format!(
            "{} is not empty; restore into an empty folder",
            dest.display()
        )));
    }
    let bar = crate::output::progress_bar("restoring [{bar:30}] {pos}/{len} {msg}");
    let progress = |name: &str, done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(name.to_string());
        tracing::debug!(object = name, done, total, "restored");
    };
    let report = restore(t, dest, to_time, &progress)
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))?
        .ok_or_else(|| no_backup(t))?;
    bar.finish_and_clear();
    Ok(report)
}

fn no_backup(t: &SyncTarget) -> Failure {
    Failure::Refused(format!(
        "{}/{} holds no backup of this workspace",
        t.bucket.url(),
        t.prefix
    ))
}
