//! `coditect describe KIND NAME`: spec, status, conditions and recent events.

use serde_json::{Value, json};

use crate::cli::ObjectArgs;
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured, print_table};

pub async fn run(
    format: OutputFormat,
    remote: &super::Remote,
    args: &ObjectArgs,
) -> Result<(), Failure> {
    let kind = super::kind(&args.kind)?;
    let client = remote.client()?;
    let object = client.find(kind, &args.name, args.org.as_deref()).await?;
    let key = object.key();
    let events = client.events(&key).await?;
    if matches!(format, OutputFormat::Json | OutputFormat::Yaml) {
        return Ok(print_structured(
            format,
            &json!({"object": object, "events": events}),
        )?);
    }
    let m = object.metadata();
    let status = object.status_json();
    outln!("Name:          {}", m.name);
    outln!("Kind:          {}", kind.as_str());
    if let Some(org) = &m.organization {
        outln!("Organization:  {org}");
    }
    if let Some(team) = &m.team {
        outln!("Team:          {team}");
    }
    let labels: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    outln!(
        "Labels:        {}",
        if labels.is_empty() {
            "<none>".into()
        } else {
            labels.join(",")
        }
    );
    outln!(
        "Generation:    {} (observed: {})",
        m.generation.unwrap_or(0),
        status["observedGeneration"]
            .as_i64()
            .map_or("-".into(), |g| g.to_string())
    );
    outln!("Spec hash:     {}", coditect_specs::spec_hash(&object));
    if let Some(t) = &m.deletion_timestamp {
        outln!(
            "Deleting:      since {t} (finalizers: {})",
            m.finalizers.join(", ")
        );
    }
    outln!("Spec:");
    let spec = serde_yaml::to_string(&object.spec_json()).map_err(anyhow::Error::from)?;
    for line in spec.lines() {
        outln!("  {line}");
    }
    outln!("Status:");
    for field in [
        "phase",
        "endpoint",
        "sessionExpiresAt",
        "workspacesReady",
        "workspacesTotal",
    ] {
        if let Some(v) = status.get(field).filter(|v| !v.is_null()) {
            outln!(
                "  {field}: {}",
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            );
        }
    }
    outln!("Conditions:");
    let conditions: Vec<Vec<String>> = status["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    ["type", "status", "reason", "lastTransitionTime", "message"]
                        .iter()
                        .map(|f| text(&c[*f]))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    print_table(
        &["  TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"],
        &indent(conditions),
    );
    outln!("Events:");
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.time.clone(),
                e.event_type.clone(),
                e.reason.clone(),
                e.message.clone(),
            ]
        })
        .collect();
    print_table(&["  TIME", "TYPE", "REASON", "MESSAGE"], &indent(rows));
    Ok(())
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn indent(rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|mut r| {
            if let Some(first) = r.first_mut() {
                *first = format!("  {first}");
            }
            r
        })
        .collect()
}
