//! `coditect get KIND [NAME] [-l SELECTOR] [-o wide|yaml|json]`.

use coditect_specs::{Kind, Resource};
use serde_json::Value;

use crate::cli::GetArgs;
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured, print_table};

pub async fn run(
    format: OutputFormat,
    remote: &super::Remote,
    args: &GetArgs,
) -> Result<(), Failure> {
    let kind = super::kind(&args.kind)?;
    let client = remote.client()?;
    let objects = match &args.name {
        Some(name) => vec![client.find(kind, name, args.org.as_deref()).await?],
        None => client.list(kind, args.selector.as_deref()).await?,
    };
    match format {
        OutputFormat::Json => {
            if args.name.is_some() {
                print_structured(format, &objects[0])?;
            } else {
                print_structured(
                    format,
                    &serde_json::json!({"kind": format!("{}List", kind.as_str()), "items": objects}),
                )?;
            }
        }
        OutputFormat::Yaml => {
            for o in &objects {
                out!(
                    "---\n{}",
                    serde_yaml::to_string(o).map_err(anyhow::Error::from)?
                );
            }
        }
        OutputFormat::Text | OutputFormat::Wide => {
            if objects.is_empty() {
                eprintln!("no {} found", kind.plural());
                return Ok(());
            }
            table(kind, &objects, format == OutputFormat::Wide);
        }
    }
    Ok(())
}

fn condition(status: &Value, type_: &str) -> String {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("Unknown")
        .to_string()
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(kind: Kind, objects: &[Resource], wide: bool) {
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|o| {
            let m = o.metadata();
            let st = o.status_json();
            let spec = o.spec_json();
            let generation = format!(
                "{}/{}",
                m.generation.unwrap_or(0),
                s(&st["observedGeneration"])
            );
            match kind {
                Kind::Workspace => {
                    let mut row = vec![
                        m.name.clone(),
                        m.organization.clone().unwrap_or_default(),
                        m.team.clone().unwrap_or_default(),
                        s(&spec["owner"]),
                        condition(&st, "Ready"),
                        s(&st["phase"]),
                        spec["agents"].as_array().map_or(0, Vec::len).to_string(),
                    ];
                    if wide {
                        let lag = st["syncLagSeconds"]
                            .as_f64()
                            .map_or("-".into(), |l| format!("{l:.1}s"));
                        row.extend([
                            s(&st["endpoint"]),
                            generation,
                            s(&st["sessionExpiresAt"]),
                            lag,
                        ]);
                    }
                    row
                }
                Kind::Team => {
                    let mut row = vec![
                        m.name.clone(),
                        m.organization.clone().unwrap_or_default(),
                        spec["members"].as_array().map_or(0, Vec::len).to_string(),
                        format!(
                            "{}/{}",
                            s(&st["workspacesReady"]),
                            s(&st["workspacesTotal"])
                        ),
                    ];
                    if wide {
                        row.push(generation);
                    }
                    row
                }
                Kind::Migration => {
                    let users = &st["users"];
                    let mut row = vec![
                        m.name.clone(),
                        s(&st["phase"]),
                        s(&users["total"]),
                        s(&users["cutOver"]),
                        s(&users["completed"]),
                        s(&users["failed"]),
                    ];
                    if wide {
                        row.extend([s(&spec["source"]["export"]), generation]);
                    }
                    row
                }
                Kind::Organization => {
                    let mut row = vec![
                        m.name.clone(),
                        format!(
                            "{}/{}",
                            s(&st["workspacesReady"]),
                            s(&st["workspacesTotal"])
                        ),
                        s(&spec["quotas"]["maxWorkspaces"]),
                    ];
                    if wide {
                        row.extend([s(&spec["storage"]["bucket"]), generation]);
                    }
                    row
                }
            }
        })
        .collect();
    let (base, extra): (&[&str], &[&str]) = match kind {
        Kind::Workspace => (
            &[
                "NAME",
                "ORGANIZATION",
                "TEAM",
                "OWNER",
                "READY",
                "PHASE",
                "AGENTS",
            ],
            &["ENDPOINT", "GENERATION", "SESSION-EXPIRES", "SYNC-LAG"],
        ),
        Kind::Team => (
            &["NAME", "ORGANIZATION", "MEMBERS", "WORKSPACES-READY"],
            &["GENERATION"],
        ),
        Kind::Migration => (
            &["NAME", "PHASE", "USERS", "CUT-OVER", "COMPLETED", "FAILED"],
            &["EXPORT", "GENERATION"],
        ),
        Kind::Organization => (
            &["NAME", "WORKSPACES-READY", "MAX-WORKSPACES"],
            &["BUCKET", "GENERATION"],
        ),
    };
    let mut headers = base.to_vec();
    if wide {
        headers.extend_from_slice(extra);
    }
    print_table(&headers, &rows);
}
