//! `coditect cost report [--org O] [--since 30d]`: what the workspaces cost, priced from
//! the control plane's measured usage; `coditect cost project --users 1000`: a month for N
//! users, with and without auto-sleep.

use std::path::PathBuf;

use anyhow::Context;
use coditect_control_plane::usage::UsageReport;
use coditect_ops::cost::{Cost, DEFAULT_PRICING, Pricing, Profile, cost};
use coditect_ops::report::{Scope, price};
use serde_json::json;

use crate::cli::{CostCommand, CostProjectArgs, CostReportArgs};
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured, print_table};

/// The product brief's own model: $9,500 a month for 1,000 users before optimisation.
const BRIEF_PER_USER: f64 = 9.50;

pub async fn run(
    format: OutputFormat,
    remote: &super::Remote,
    cmd: &CostCommand,
) -> Result<(), Failure> {
    match cmd {
        CostCommand::Report(args) => report(format, remote, args).await,
        CostCommand::Project(args) => project(format, args),
    }
}

/// The pricing file at `path`, or the one shipped.
pub(crate) fn pricing(path: Option<&PathBuf>) -> Result<Pricing, Failure> {
    let text = match path {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?
        }
        None => DEFAULT_PRICING.to_string(),
    };
    Pricing::parse(&text).map_err(|e| {
        eprintln!("error: {e}");
        Failure::InvalidInput
    })
}

fn ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn report(
    format: OutputFormat,
    remote: &super::Remote,
    args: &CostReportArgs,
) -> Result<(), Failure> {
    let pricing = pricing(args.pricing.as_ref())?;
    let since = ms(super::parse_since(&args.since)?);
    let until = ms(std::time::SystemTime::now());
    let client = remote.client()?;
    let mut q = vec![
        ("sinceMs", since.to_string()),
        ("untilMs", until.to_string()),
    ];
    if let Some(org) = &args.org {
        q.push(("organization", org.clone()));
    }
    let value = client.get_json("/apis/coditect.io/v1/usage", &q).await?;
    let usage: UsageReport = serde_json::from_value(value)
        .context("the server's usage report is not in the expected shape")?;
    for w in &usage.workspaces {
        if let Some(e) = &w.bucket_error {
            eprintln!(
                "warning: {}/{}: bucket not read ({e}); its storage, operations and logs count as zero",
                w.organization, w.workspace
            );
        }
    }
    let report = price(&usage, &pricing).map_err(|e| Failure::Internal(e.into()))?;
    if format.is_structured() {
        return Ok(print_structured(
            format,
            &json!({"report": report, "usage": usage}),
        )?);
    }
    // Cents hide what a short window costs: small figures get four decimals.
    let money = |x: f64| {
        if x != 0.0 && x.abs() < 1.0 {
            format!("${x:.4}")
        } else {
            format!("${x:.2}")
        }
    };
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|r| {
            vec![
                match r.scope {
                    Scope::Workspace => "workspace",
                    Scope::Team => "team",
                    Scope::Organization => "organization",
                    Scope::Total => "total",
                }
                .into(),
                r.name.clone(),
                format!("{:.1}", r.awake_hours),
                money(r.cost.compute),
                money(r.cost.storage),
                money(r.cost.operations),
                money(r.cost.egress),
                money(r.cost.observability),
                money(r.cost.mirror),
                money(r.cost.total),
                r.users.to_string(),
                money(r.per_user_per_month),
            ]
        })
        .collect();
    outln!(
        "{} to {}; prices {} ({})",
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(since)
        ),
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(until)
        ),
        pricing.version,
        pricing.currency
    );
    print_table(
        &[
            "SCOPE",
            "NAME",
            "AWAKE H",
            "COMPUTE",
            "STORAGE",
            "OPERATIONS",
            "EGRESS",
            "OBSERVABILITY",
            "MIRROR",
            "TOTAL",
            "USERS",
            "PER USER/MONTH",
        ],
        &rows,
    );
    Ok(())
}

fn project(format: OutputFormat, args: &CostProjectArgs) -> Result<(), Failure> {
    let pricing = pricing(args.pricing.as_ref())?;
    let profile = |sleep: bool| {
        let mut p = Profile::default_for(sleep);
        p.vcpus = args.vcpus.unwrap_or(p.vcpus);
        p.memory_gib = args.memory_gib.unwrap_or(p.memory_gib);
        p.stored_gib = args.stored_gib.unwrap_or(p.stored_gib);
        if sleep {
            p.awake_hours = args.awake_hours.unwrap_or(p.awake_hours);
        }
        p
    };
    let month = |sleep: bool| -> Result<(Profile, Cost), Failure> {
        let p = profile(sleep);
        let c = cost(&p.month(args.users), &pricing).map_err(|e| Failure::Internal(e.into()))?;
        Ok((p, c))
    };
    let (on, always) = month(false)?;
    let (slept, sleeping) = month(true)?;
    let users = f64::from(args.users.max(1));
    if format.is_structured() {
        return Ok(print_structured(
            format,
            &json!({
                "users": args.users, "pricing": pricing.version,
                "withoutAutoSleep": {"profile": on, "month": always, "perUser": always.total / users},
                "withAutoSleep": {"profile": slept, "month": sleeping, "perUser": sleeping.total / users},
                "brief": {"perUser": BRIEF_PER_USER, "month": BRIEF_PER_USER * users},
            }),
        )?);
    }
    let money = |x: f64| format!("${x:.2}");
    let line = |name: &str, a: f64, b: f64| vec![name.to_string(), money(a), money(b)];
    let rows = vec![
        line(
            "compute (vCPU + memory while awake)",
            always.compute,
            sleeping.compute,
        ),
        line("storage (bucket)", always.storage, sleeping.storage),
        line(
            "operations (class A + B)",
            always.operations,
            sleeping.operations,
        ),
        line("egress (restores)", always.egress, sleeping.egress),
        line(
            "observability (logs)",
            always.observability,
            sleeping.observability,
        ),
        line("total a month", always.total, sleeping.total),
        line(
            "per user a month",
            always.total / users,
            sleeping.total / users,
        ),
        vec![
            "the brief's model, per user".into(),
            money(BRIEF_PER_USER),
            "goal < $4.00".into(),
        ],
    ];
    outln!(
        "{} users, each workspace {} vCPU / {} GiB, {} GiB in the bucket; prices {} ({})",
        args.users,
        on.vcpus,
        on.memory_gib,
        on.stored_gib,
        pricing.version,
        pricing.currency
    );
    print_table(
        &[
            "",
            &format!("ALWAYS ON ({} h)", on.awake_hours),
            &format!("AUTO-SLEEP ({} h)", slept.awake_hours),
        ],
        &rows,
    );
    Ok(())
}
