//! `coditect agents check`: for each agent whose key is at hand, one small real call to its
//! provider — reachable, key accepted, model answering, and a tool call carried through a
//! second request (with whatever state the provider requires back) — so a wrong key, model
//! name or base URL shows before a task fails on it. Offline agents say they are offline;
//! agents whose key is missing say which one.

use std::path::Path;
use std::time::Instant;

use coditect_specs::AgentSpec;
use serde::Serialize;
use serde_json::json;

use super::models::{AgentModel, ModelChoice, choose};
use super::{Model, ModelError, ModelTurn, Turn};

/// The prompt of the check: one tool call, then a one-word answer.
const PROMPT: &str = "Connectivity check from coditect. Call the tool list_files once with \
path \".\", then answer with the single word OK.";

/// How one agent's check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Every step passed.
    Ok,
    /// The agent runs the offline planner: nothing to reach.
    Offline,
    /// Not checked: its key is not set here.
    Skipped,
    /// A step failed (see `detail`).
    Failed,
}

/// One agent's check.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCheck {
    /// The agent.
    pub agent: String,
    /// Its provider.
    pub provider: String,
    /// The model the spec asks for.
    pub model: String,
    /// The outcome.
    pub status: CheckStatus,
    /// Whether the provider answered at all (`None`: not tried).
    pub reachable: Option<bool>,
    /// Whether it accepted the key.
    pub authenticated: Option<bool>,
    /// The model that answered, as the provider names it.
    pub answered_by: Option<String>,
    /// Whether a tool call went out and its result came back through a second request.
    pub tool_round_trip: Option<bool>,
    /// What went wrong, or what was seen.
    pub detail: String,
    /// Time for the whole check.
    pub latency_ms: f64,
}

/// Checks every agent of a workspace, concurrently.
pub async fn check_all(agents: &[AgentSpec], secrets: &Path) -> Vec<AgentCheck> {
    futures_util::future::join_all(agents.iter().map(|a| check(a, secrets))).await
}

/// Checks one agent.
pub async fn check(agent: &AgentSpec, secrets: &Path) -> AgentCheck {
    let mut report = AgentCheck {
        agent: agent.name.clone(),
        provider: agent.provider.as_str().to_string(),
        model: agent
            .model
            .clone()
            .unwrap_or_else(|| coditect_specs::defaults::model(agent.provider).to_string()),
        status: CheckStatus::Skipped,
        reachable: None,
        authenticated: None,
        answered_by: None,
        tool_round_trip: None,
        detail: String::new(),
        latency_ms: 0.0,
    };
    let model = match choose(agent, secrets) {
        ModelChoice::Provider(m) => m,
        ModelChoice::Offline(None) => {
            report.status = CheckStatus::Offline;
            report.detail = "offline planner: makes no network calls".into();
            return report;
        }
        ModelChoice::Offline(Some(why)) => {
            report.detail = format!("{why} (runs the offline planner instead)");
            return report;
        }
        ModelChoice::Unavailable(why) => {
            report.detail = why;
            return report;
        }
    };
    let started = Instant::now();
    round_trip(&model, &mut report).await;
    report.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    report
}

/// The two requests of the check, filling in `report`.
async fn round_trip(model: &AgentModel, report: &mut AgentCheck) {
    let mut conversation = vec![Turn::User {
        text: PROMPT.into(),
    }];
    let first = match model.next_turn(&conversation, &["list_files"]).await {
        Ok(t) => t,
        Err(e) => return failed(report, &e),
    };
    (report.reachable, report.authenticated) = (Some(true), Some(true));
    report.answered_by = first.model.clone();
    let Some(call) = first.calls.first().cloned() else {
        report.status = CheckStatus::Failed;
        report.tool_round_trip = Some(false);
        report.detail = format!(
            "the model answered without calling the tool: {:?}",
            first.text
        );
        return;
    };
    let ModelTurn {
        text, calls, state, ..
    } = first;
    conversation.push(Turn::Assistant { text, calls, state });
    conversation.push(Turn::ToolResult {
        id: call.id,
        ok: true,
        content: json!({"files": ["README.md"]}),
    });
    match model.next_turn(&conversation, &["list_files"]).await {
        Ok(second) => {
            report.status = CheckStatus::Ok;
            report.tool_round_trip = Some(true);
            report.detail = format!("answered {:?} after the tool result", second.text.trim());
        }
        Err(e) => {
            report.tool_round_trip = Some(false);
            failed(report, &e);
        }
    }
}

fn failed(report: &mut AgentCheck, e: &ModelError) {
    report.status = CheckStatus::Failed;
    match e {
        ModelError::Unreachable(_) => report.reachable = Some(false),
        ModelError::Refused {
            status: 401 | 403, ..
        } => {
            report.reachable = Some(true);
            report.authenticated = Some(false);
        }
        ModelError::Refused { .. } | ModelError::RateLimited { .. } | ModelError::Failed(_) => {
            report.reachable = Some(true);
        }
    }
    report.detail = e.to_string();
}
