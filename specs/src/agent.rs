//! The agents of a workspace: which provider each speaks to, with which model, in which
//! role, and where its credentials come from.
//!
//! Roles: `lead` is exclusive (at most one per workspace), because the lead is the one
//! agent the orchestrator hands planning and task splitting to, and two leads would split
//! the same work twice. Every other role may be held by several agents; tasks routed to a
//! role go to the least busy agent holding it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One agent of a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentSpec {
    /// The agent's name, unique in the workspace (a DNS-1123 label).
    pub name: String,
    /// Which API the agent speaks.
    pub provider: Provider,
    /// The model to ask; defaults per provider (see `coditect validate --show-defaults`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// What the orchestrator routes to this agent.
    #[serde(default)]
    pub role: AgentRole,
    /// Where the API key comes from; never logged, never written to events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// Overrides the provider's API address (proxies, local models, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Run the offline provider instead when the credential is not available, so a demo
    /// or a laptop without keys still works. The agent's status says when it does.
    #[serde(default)]
    pub offline_fallback: bool,
    /// Limits on one task.
    #[serde(default)]
    pub budget: AgentBudget,
    /// How much the model thinks before it answers, where its provider lets you say
    /// (Claude's extended thinking, Gemini's thinking level or budget, OpenAI's reasoning
    /// effort, Kimi's thinking switch); the provider's own default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
}

/// A thinking or reasoning setting, mapped onto each provider's own knob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reasoning {
    /// How hard to think: `none` turns thinking off where the provider allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<ReasoningEffort>,
    /// Tokens the model may spend thinking (Claude's `budget_tokens`, Gemini 2.5's
    /// `thinkingBudget`); at least 1024. Wins over `effort` where both could apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u64>,
}

/// Reasoning effort, in the words the providers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReasoningEffort {
    /// No thinking.
    None,
    /// As little as the model allows.
    Minimal,
    /// Little.
    Low,
    /// The usual.
    Medium,
    /// Much.
    High,
    /// The most (OpenAI's `xhigh`).
    Xhigh,
}

impl ReasoningEffort {
    /// The name used in manifests and by OpenAI.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReasoningEffort::None => "none",
            ReasoningEffort::Minimal => "minimal",
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
            ReasoningEffort::Xhigh => "xhigh",
        }
    }

    /// A thinking budget in tokens for providers that take a budget, not a level.
    pub fn budget_tokens(&self) -> u64 {
        match self {
            ReasoningEffort::None => 0,
            ReasoningEffort::Minimal => 1024,
            ReasoningEffort::Low => 2048,
            ReasoningEffort::Medium => 8192,
            ReasoningEffort::High => 16_384,
            ReasoningEffort::Xhigh => 32_000,
        }
    }
}

/// The model APIs Coditect speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// Anthropic Messages API (Claude).
    Anthropic,
    /// Google Gemini `generateContent`.
    Google,
    /// OpenAI API (Codex models).
    Openai,
    /// Moonshot (Kimi), OpenAI-compatible chat completions.
    Moonshot,
    /// Any OpenAI-compatible server (Ollama, vLLM); needs `baseUrl`.
    OpenaiCompatible,
    /// Deterministic, network-free planner for the embedded default and tests.
    Offline,
}

impl Provider {
    /// Every provider, in documentation order.
    pub const ALL: [Provider; 6] = [
        Provider::Anthropic,
        Provider::Google,
        Provider::Openai,
        Provider::Moonshot,
        Provider::OpenaiCompatible,
        Provider::Offline,
    ];

    /// The name used in manifests.
    pub fn as_str(&self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::Google => "google",
            Provider::Openai => "openai",
            Provider::Moonshot => "moonshot",
            Provider::OpenaiCompatible => "openai-compatible",
            Provider::Offline => "offline",
        }
    }

    /// Whether calling it needs an API key.
    pub fn needs_credentials(&self) -> bool {
        !matches!(self, Provider::Offline | Provider::OpenaiCompatible)
    }
}

/// What an agent is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AgentRole {
    /// Plans and splits work; exclusive (one per workspace).
    Lead,
    /// Writes code.
    #[default]
    Coder,
    /// Reviews changes.
    Reviewer,
    /// Writes and runs tests.
    Tester,
    /// Reads, searches and summarises.
    Researcher,
}

impl AgentRole {
    /// The name used in manifests.
    pub fn as_str(&self) -> &'static str {
        match self {
            AgentRole::Lead => "lead",
            AgentRole::Coder => "coder",
            AgentRole::Reviewer => "reviewer",
            AgentRole::Tester => "tester",
            AgentRole::Researcher => "researcher",
        }
    }

    /// Whether at most one agent of a workspace may hold this role.
    pub fn is_exclusive(&self) -> bool {
        matches!(self, AgentRole::Lead)
    }
}

/// Where a secret comes from: exactly one of `env` or `secretRef`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credentials {
    /// An environment variable of the runtime instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A named secret (a Kubernetes Secret, or a file under the control plane's secrets/).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// A key inside a named secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// The secret's name.
    pub name: String,
    /// The key inside it.
    pub key: String,
}

/// Limits on one task of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentBudget {
    /// Model round trips per task.
    #[serde(default = "crate::defaults::max_steps")]
    pub max_steps: u32,
    /// Tokens (input + output) per task.
    #[serde(default = "crate::defaults::max_tokens")]
    pub max_tokens: u64,
}

impl Default for AgentBudget {
    fn default() -> Self {
        AgentBudget {
            max_steps: crate::defaults::max_steps(),
            max_tokens: crate::defaults::max_tokens(),
        }
    }
}
