//! `coditect migrate status NAME [--users a,b] [--watch]`: a migration's users by phase
//! (they add up to every selected user), bytes copied, cutover pauses and the next step to
//! take; each named user's record; `-o json` has all of it. `--watch` follows the
//! migration's watch stream with a progress bar (users done, bytes, ETA) until it
//! finishes or waits on a person.

use std::time::Duration;

use coditect_specs::{Kind, MigrationStatus, ObjectKey, Resource, UserPhase};
use serde_json::{Value, json};

use crate::cli::MigrateStatusArgs;
use crate::commands::Remote;
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured, print_table};

/// How long `--watch` follows at most.
const WATCH_FOR: Duration = Duration::from_secs(24 * 3600);

fn status_of(r: &Resource) -> MigrationStatus {
    match r {
        Resource::Migration(m) => m.status.clone().unwrap_or_default(),
        _ => MigrationStatus::default(),
    }
}

/// Whether the migration has nothing more to do on its own.
fn settled(s: &MigrationStatus) -> bool {
    matches!(s.phase.as_deref(), Some("Succeeded" | "Waiting" | "Failed"))
}

fn done(s: &MigrationStatus) -> u64 {
    let u = &s.users;
    u64::from(u.cut_over + u.completed + u.rolled_back + u.failed)
}

pub async fn run(
    format: OutputFormat,
    remote: &Remote,
    args: &MigrateStatusArgs,
) -> Result<(), Failure> {
    let client = remote.client()?;
    let key = ObjectKey {
        kind: Kind::Migration,
        organization: None,
        name: args.name.clone(),
    };
    let mut object = client.get(&key).await?;
    if args.watch {
        let bar = crate::output::progress_bar(
            "migrating [{bar:30}] {pos}/{len} users cut over {msg} {eta}",
        );
        object = client
            .watch_until(&key, WATCH_FOR, |r| {
                let s = status_of(r);
                bar.set_length(u64::from(s.users.total));
                bar.set_position(done(&s));
                bar.set_message(format!("{} MiB", s.bytes_copied >> 20));
                settled(&s)
            })
            .await?;
        bar.finish_and_clear();
    }
    let status = status_of(&object);
    let records = client.migration_users(&args.name).await?;
    let mut users: Vec<Value> = records["items"].as_array().cloned().unwrap_or_default();
    if !args.users.is_empty() {
        users.retain(|u| {
            u["login"]
                .as_str()
                .is_some_and(|l| args.users.iter().any(|x| x == l))
        });
    }
    if format.is_structured() {
        let out = json!({
            "migration": args.name,
            "status": status,
            "users": users,
            "wishes": records["wishes"],
            "next": status.next,
        });
        return print_structured(format, &out).map_err(Failure::Internal);
    }
    print_text(&args.name, &status, &users, !args.users.is_empty());
    Ok(())
}

fn print_text(name: &str, s: &MigrationStatus, users: &[Value], each: bool) {
    outln!(
        "migration/{name}: {} — {} user(s)",
        s.phase.as_deref().unwrap_or("Pending"),
        s.users.total
    );
    let rows: Vec<Vec<String>> = UserPhase::ALL
        .iter()
        .filter(|p| s.users.of(**p) > 0)
        .map(|p| {
            let n = s.users.of(*p);
            let pct = if s.users.total == 0 {
                0.0
            } else {
                f64::from(n) * 100.0 / f64::from(s.users.total)
            };
            vec![p.to_string(), n.to_string(), format!("{pct:.0}%")]
        })
        .collect();
    print_table(&["PHASE", "USERS", "SHARE"], &rows);
    outln!("copied: {} bytes", s.bytes_copied);
    if let (Some(p50), Some(p99)) = (s.pause_p50_ms, s.pause_p99_ms) {
        outln!("cutover pause: p50 {p50:.1} ms, p99 {p99:.1} ms");
    }
    for p in &s.problems {
        outln!("problem  {p}");
    }
    if each || users.len() <= 20 {
        let rows: Vec<Vec<String>> = users
            .iter()
            .map(|u| {
                vec![
                    u["login"].as_str().unwrap_or_default().to_string(),
                    u["phase"].as_str().unwrap_or_default().to_string(),
                    u["grade"].as_str().unwrap_or("-").to_string(),
                    u["pauseMs"]
                        .as_f64()
                        .map_or("-".into(), |p| format!("{p:.1} ms")),
                    u["reasons"]
                        .as_array()
                        .and_then(|r| r.first())
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            outln!();
            print_table(&["LOGIN", "PHASE", "GRADE", "PAUSE", "WHY"], &rows);
        }
    }
    if let Some(next) = &s.next {
        outln!();
        outln!("next: {next}");
    }
}
