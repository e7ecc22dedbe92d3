//! `coditect cost project --users 1000`: a month for N users, with and without auto-sleep.

use anyhow::Context;
use coditect_ops::cost::{Cost, DEFAULT_PRICING, Pricing, Profile, cost};
use serde_json::json;

use crate::cli::{CostCommand, CostProjectArgs};
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured, print_table};

/// The product brief's own model: $9,500 a month for 1,000 users before optimisation.
const BRIEF_PER_USER: f64 = 9.50;

pub fn run(format: OutputFormat, cmd: &CostCommand) -> Result<(), Failure> {
    match cmd {
        CostCommand::Project(args) => project(format, args),
    }
}

fn project(format: OutputFormat, args: &CostProjectArgs) -> Result<(), Failure> {
    let text = match &args.pricing {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?
        }
        None => DEFAULT_PRICING.to_string(),
    };
    let pricing = Pricing::parse(&text).map_err(|e| {
        eprintln!("error: {e}");
        Failure::InvalidInput
    })?;
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
    println!(
        "{} users, each workspace {} vCPU / {} GiB, {} GiB in the bucket; prices {} ({})",
        args.users, on.vcpus, on.memory_gib, on.stored_gib, pricing.version, pricing.currency
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
