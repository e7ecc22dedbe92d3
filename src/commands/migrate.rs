//! `coditect migrate …`. `plan -f migration.yaml`: what a v1 → v2 migration would
//! create, read from the v1 export alone (no control plane, nothing changed; exit 1 when
//! the export has problems, each printed at its object and line, so a pipeline can stop
//! on them). `status`, `promote`, `cutover`, `rollback`, `complete NAME`: a migration the
//! control plane runs (`coditect apply -f migration.yaml` started it).

use coditect_migrate::plan::{Plan, plan};

use crate::cli::{MigrateActionArgs, MigrateCommand, MigratePlanArgs};
use crate::commands::Remote;
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured, print_table};

/// `coditect migrate …`.
pub async fn run(
    format: OutputFormat,
    remote: &Remote,
    cmd: &MigrateCommand,
) -> Result<(), Failure> {
    match cmd {
        MigrateCommand::Plan(args) => run_plan(format, args).await,
        MigrateCommand::Status(args) => super::migrate_status::run(format, remote, args).await,
        MigrateCommand::Promote(args) => act(format, remote, "promote", args).await,
        MigrateCommand::Cutover(args) => {
            if args.users.is_empty() {
                return Err(Failure::Refused(
                    "cutover names its users: --users LOGIN[,LOGIN…] (promote lets every verified user go)".into(),
                ));
            }
            act(format, remote, "cutover", args).await
        }
        MigrateCommand::Rollback(args) => act(format, remote, "rollback", args).await,
        MigrateCommand::Complete(args) => act(format, remote, "complete", args).await,
    }
}

/// Records `action` for the users; the control plane's migration reconciler acts on it.
async fn act(
    format: OutputFormat,
    remote: &Remote,
    action: &str,
    args: &MigrateActionArgs,
) -> Result<(), Failure> {
    let client = remote.client()?;
    let answer = client
        .migration_action(&args.name, action, &args.users, args.approve)
        .await?;
    if format.is_structured() {
        let next = format!("coditect migrate status {} --watch", args.name);
        let out = serde_json::json!({"accepted": answer, "next": next});
        return print_structured(format, &out).map_err(Failure::Internal);
    }
    let users = answer["users"].as_array().map_or(0, Vec::len);
    println!(
        "migration/{}: {action} asked for {users} user(s){}; follow it with: coditect migrate status {} --watch",
        args.name,
        if args.approve { " (approved)" } else { "" },
        args.name
    );
    Ok(())
}

async fn run_plan(format: OutputFormat, args: &MigratePlanArgs) -> Result<(), Failure> {
    let migration = coditect_migrate::spec::load(&args.file).map_err(|e| {
        eprintln!("error: {e}");
        Failure::InvalidInput
    })?;
    let bar =
        crate::output::progress_bar("reading the v1 export [{bar:30}] {pos}/{len} users {eta}");
    let planned = plan(&migration, |done, of| {
        bar.set_length(of as u64);
        bar.set_position(done as u64);
    })
    .await
    .map_err(|e| Failure::Unavailable(e.to_string()))?;
    bar.finish_and_clear();
    if format.is_structured() {
        print_structured(format, &planned).map_err(Failure::Internal)?;
    } else {
        print_text(&planned);
    }
    let problems = planned.problems.len() + planned.users_with_problems();
    if problems > 0 {
        return Err(Failure::InvalidInput);
    }
    Ok(())
}

fn print_text(p: &Plan) {
    let rows: Vec<Vec<String>> = p
        .users
        .iter()
        .map(|u| {
            vec![
                u.login.clone(),
                format!("{}/{}", u.organization, u.workspace),
                u.team.clone(),
                u.agents.join(","),
                u.files.to_string(),
                human_bytes(u.bytes),
                u.conflicts.len().to_string(),
                u.events.to_string(),
                if u.problems.is_empty() {
                    "-".into()
                } else {
                    u.problems.len().to_string()
                },
            ]
        })
        .collect();
    print_table(
        &[
            "LOGIN",
            "WORKSPACE",
            "TEAM",
            "AGENTS",
            "FILES",
            "SIZE",
            "CONFLICTS",
            "EVENTS",
            "PROBLEMS",
        ],
        &rows,
    );
    outln!();
    outln!(
        "plan {}: {} of {} users in {}, {} files, {}; nothing was changed",
        p.migration,
        p.users.len(),
        p.users_in_export,
        p.export,
        p.files(),
        human_bytes(p.bytes())
    );
    for u in &p.users {
        for c in &u.conflicts {
            let kept: Vec<String> = c
                .kept
                .iter()
                .map(|(sb, name)| format!("{sb} kept as {name}"))
                .collect();
            outln!(
                "conflict  {}: {} from {} ({})",
                u.login,
                c.path,
                c.winner,
                kept.join(", ")
            );
        }
    }
    for problem in &p.problems {
        outln!("problem   {problem}");
    }
    for u in &p.users {
        for problem in &u.problems {
            outln!("problem   {}: {problem}", u.login);
        }
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
