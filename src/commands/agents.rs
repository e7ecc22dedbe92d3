//! `coditect agents check WORKSPACE | -f FILE`: one small real call per agent whose key is
//! set in this shell (or in `--secrets-dir`), so a wrong key, model or address shows
//! before a task fails on it. The calls go from here, not from the instance: what is
//! checked is the key you hold.

use coditect_runtime::agents::check::{AgentCheck, CheckStatus, check_all};
use coditect_specs::{Catalog, Kind, Resource};

use crate::cli::{AgentsArgs, AgentsCheckArgs, AgentsCommand, WorkspaceTarget};
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured, print_table};

pub async fn run(
    format: OutputFormat,
    remote: &super::Remote,
    args: &AgentsArgs,
) -> Result<(), Failure> {
    match (&args.command, &args.workspace) {
        (Some(AgentsCommand::Check(check_args)), _) => check(format, remote, check_args).await,
        (None, Some(workspace)) => {
            let target = WorkspaceTarget {
                workspace: workspace.clone(),
                org: args.org.clone(),
            };
            super::inside::agents(format, remote, &target).await
        }
        (None, None) => Err(Failure::Refused(
            "name a workspace (`coditect agents NAME`) or `coditect agents check`".into(),
        )),
    }
}

async fn check(
    format: OutputFormat,
    remote: &super::Remote,
    args: &AgentsCheckArgs,
) -> Result<(), Failure> {
    let workspaces = workspaces(format, remote, args).await?;
    let mut reports: Vec<(String, AgentCheck)> = Vec::new();
    for (name, agents) in workspaces {
        for report in check_all(&agents, &args.secrets_dir).await {
            reports.push((name.clone(), report));
        }
    }
    let failed = reports.iter().any(|(_, r)| r.status == CheckStatus::Failed);
    if matches!(format, OutputFormat::Json | OutputFormat::Yaml) {
        let out: Vec<_> = reports
            .iter()
            .map(|(ws, r)| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["workspace"] = serde_json::json!(ws);
                v
            })
            .collect();
        print_structured(format, &out)?;
    } else {
        let yes_no = |v: Option<bool>| match v {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        let rows: Vec<Vec<String>> = reports
            .iter()
            .map(|(ws, r)| {
                vec![
                    ws.clone(),
                    r.agent.clone(),
                    r.provider.clone(),
                    r.model.clone(),
                    format!("{:?}", r.status).to_lowercase(),
                    yes_no(r.reachable).into(),
                    yes_no(r.authenticated).into(),
                    yes_no(r.tool_round_trip).into(),
                    r.detail.clone(),
                ]
            })
            .collect();
        print_table(
            &[
                "WORKSPACE",
                "AGENT",
                "PROVIDER",
                "MODEL",
                "STATUS",
                "REACHABLE",
                "AUTH",
                "TOOLS",
                "DETAIL",
            ],
            &rows,
        );
    }
    if failed {
        return Err(Failure::InvalidInput);
    }
    Ok(())
}

/// The workspaces to check, with their agents: from the manifests, or the named one from
/// the control plane.
async fn workspaces(
    format: OutputFormat,
    remote: &super::Remote,
    args: &AgentsCheckArgs,
) -> Result<Vec<(String, Vec<coditect_specs::AgentSpec>)>, Failure> {
    if let Some(name) = &args.workspace {
        let found = remote
            .client()?
            .find(Kind::Workspace, name, args.org.as_deref())
            .await?;
        let Resource::Workspace(w) = found else {
            return Err(Failure::Refused(format!("{name} is not a workspace")));
        };
        return Ok(vec![(w.metadata.name.clone(), w.spec.agents.clone())]);
    }
    // The manifests are parsed and defaulted; their organizations and teams need not be
    // declared here (what is checked is each agent's provider).
    let mut docs = super::manifests::load(&args.files, false, format)?;
    coditect_specs::apply_defaults_all(&mut docs, &Catalog::default());
    Ok(docs
        .into_iter()
        .filter_map(|d| match d.resource {
            Resource::Workspace(w) => Some((w.metadata.name.clone(), w.spec.agents.clone())),
            _ => None,
        })
        .collect())
}
