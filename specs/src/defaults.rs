//! Every default value of the `coditect.io/v1` kinds, in one place.
//!
//! serde fills the static ones while parsing; [`crate::apply_defaults`] fills the ones
//! that depend on other fields (a provider's model, address and key variable) or on other
//! documents (a team's workspace defaults). `coditect validate --show-defaults` prints the
//! result, so nothing is implicit.

use crate::Duration;
use crate::agent::Provider;
use crate::quantity::Quantity;

/// The embedded default bucket, relative to the control plane's data directory.
pub fn bucket() -> String {
    "file:bucket".to_string()
}
/// The region an S3-compatible mirror is signed for (R2's).
pub fn mirror_region() -> String {
    "auto".to_string()
}
/// Workspaces per organization.
pub fn max_workspaces() -> u32 {
    100
}
/// Awake workspaces per organization.
pub fn max_awake_workspaces() -> u32 {
    50
}
/// Budget alert threshold.
pub fn budget_alert_percent() -> u8 {
    80
}
/// Session length: a working day.
pub fn session_max_duration() -> Duration {
    Duration::from_secs(8 * 3600)
}
/// serde's `default = "..."` needs a function for `true`.
pub fn yes() -> bool {
    true
}
/// CPU per workspace.
pub fn cpu() -> Quantity {
    Quantity::from_static("2")
}
/// Memory per workspace.
pub fn memory() -> Quantity {
    Quantity::from_static("4Gi")
}
/// Local disk per workspace.
pub fn storage() -> Quantity {
    Quantity::from_static("10Gi")
}
/// The ref checked out when a git project names none.
pub fn git_ref() -> String {
    "main".to_string()
}
/// Lock lease length.
pub fn lease_ttl() -> Duration {
    Duration::from_secs(30)
}
/// Longest wait for a lock.
pub fn acquire_timeout() -> Duration {
    Duration::from_secs(10)
}
/// SQLite sync interval (the design page's 30 s).
pub fn databases_interval() -> Duration {
    Duration::from_secs(30)
}
/// Event log sync interval (the design page's 5 s).
pub fn events_interval() -> Duration {
    Duration::from_secs(5)
}
/// Idle time before sleep.
pub fn idle_after() -> Duration {
    Duration::from_secs(30 * 60)
}
/// Schedule time zone.
pub fn timezone() -> String {
    "UTC".to_string()
}
/// Model round trips per task.
pub fn max_steps() -> u32 {
    50
}
/// Tokens per task.
pub fn max_tokens() -> u64 {
    200_000
}

/// The model an agent of `provider` uses when its spec names none.
pub fn model(provider: Provider) -> &'static str {
    match provider {
        Provider::Anthropic => "claude-sonnet-4-6",
        Provider::Google => "gemini-3.5-flash",
        Provider::Openai => "gpt-5.5",
        Provider::Moonshot => "kimi-k2.6",
        Provider::OpenaiCompatible => "default",
        Provider::Offline => "offline-planner",
    }
}

/// The API address of `provider`; `None` where the user must give one.
pub fn base_url(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::Anthropic => Some("https://api.anthropic.com"),
        Provider::Google => Some("https://generativelanguage.googleapis.com"),
        Provider::Openai => Some("https://api.openai.com/v1"),
        Provider::Moonshot => Some("https://api.moonshot.ai/v1"),
        Provider::OpenaiCompatible | Provider::Offline => None,
    }
}

/// The environment variable an agent's key is read from when its spec names none.
pub fn credentials_env(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::Anthropic => Some("ANTHROPIC_API_KEY"),
        Provider::Google => Some("GEMINI_API_KEY"),
        Provider::Openai => Some("OPENAI_API_KEY"),
        Provider::Moonshot => Some("MOONSHOT_API_KEY"),
        Provider::OpenaiCompatible | Provider::Offline => None,
    }
}
