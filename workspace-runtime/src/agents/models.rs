//! Which model drives an agent: its provider's adapter when its key is at hand (none is
//! needed for `openai-compatible`), else the offline planner when `offlineFallback` allows
//! it, else none (and why). One place builds the adapters from a spec, for the agent loops
//! and for `coditect agents check`.

use std::path::Path;

use coditect_specs::{AgentSpec, Provider};

use super::anthropic::Messages;
use super::gemini::GenerateContent;
use super::offline::OfflinePlanner;
use super::openai::Responses;
use super::openai_compat::ChatCompletions;
use super::{Model, ModelError, ModelTurn, Turn};

/// Claude's `max_tokens` when thinking is off; with thinking it also holds the budget.
const ANTHROPIC_MAX_TOKENS: u64 = 8192;

/// One of the adapters, chosen at run time from the spec.
#[derive(Debug, Clone)]
pub enum AgentModel {
    /// Chat Completions (Moonshot, OpenAI-compatible servers).
    Chat(ChatCompletions),
    /// OpenAI Responses.
    Responses(Responses),
    /// Anthropic Messages.
    Anthropic(Messages),
    /// Gemini generateContent.
    Gemini(GenerateContent),
    /// The offline planner.
    Offline(OfflinePlanner),
}

impl Model for AgentModel {
    fn provider(&self) -> &str {
        match self {
            AgentModel::Chat(m) => m.provider(),
            AgentModel::Responses(m) => m.provider(),
            AgentModel::Anthropic(m) => m.provider(),
            AgentModel::Gemini(m) => m.provider(),
            AgentModel::Offline(m) => m.provider(),
        }
    }

    async fn next_turn(
        &self,
        conversation: &[Turn],
        tools: &[&str],
    ) -> Result<ModelTurn, ModelError> {
        match self {
            AgentModel::Chat(m) => m.next_turn(conversation, tools).await,
            AgentModel::Responses(m) => m.next_turn(conversation, tools).await,
            AgentModel::Anthropic(m) => m.next_turn(conversation, tools).await,
            AgentModel::Gemini(m) => m.next_turn(conversation, tools).await,
            AgentModel::Offline(m) => m.next_turn(conversation, tools).await,
        }
    }
}

/// The model chosen for an agent.
#[derive(Debug)]
pub enum ModelChoice {
    /// Its provider's adapter.
    Provider(AgentModel),
    /// The offline planner; why, when it stands in for another provider.
    Offline(Option<String>),
    /// None: why.
    Unavailable(String),
}

/// The model for `agent`, its key read from the environment or from `secrets`.
pub fn choose(agent: &AgentSpec, secrets: &Path) -> ModelChoice {
    let (key, why) = match crate::secrets::resolve(agent.credentials.as_ref(), secrets) {
        Ok(Some(k)) => (Some(k), String::new()),
        Ok(None) => (
            None,
            "its credentials name no variable or secret".to_string(),
        ),
        Err(why) => (None, why),
    };
    let base = agent.base_url.clone().unwrap_or_else(|| {
        coditect_specs::defaults::base_url(agent.provider)
            .unwrap_or_default()
            .to_string()
    });
    let model = agent
        .model
        .clone()
        .unwrap_or_else(|| coditect_specs::defaults::model(agent.provider).to_string());
    let reasoning = agent.reasoning.clone();
    let adapter = match (agent.provider, key) {
        (Provider::Offline, _) => return ModelChoice::Offline(None),
        (Provider::OpenaiCompatible, key) => Some(AgentModel::Chat(
            ChatCompletions::new("openai-compatible", &base, key, &model).reasoning(reasoning),
        )),
        (Provider::Moonshot, Some(k)) => Some(AgentModel::Chat(
            ChatCompletions::new("moonshot", &base, Some(k), &model).reasoning(reasoning),
        )),
        (Provider::Openai, Some(k)) => Some(AgentModel::Responses(
            Responses::new(&base, k, &model).reasoning(reasoning),
        )),
        (Provider::Anthropic, Some(k)) => Some(AgentModel::Anthropic(
            Messages::new(&base, k, &model, ANTHROPIC_MAX_TOKENS).reasoning(reasoning),
        )),
        (Provider::Google, Some(k)) => Some(AgentModel::Gemini(
            GenerateContent::new(&base, k, &model).reasoning(reasoning),
        )),
        (_, None) => None,
    };
    match adapter {
        Some(model) => ModelChoice::Provider(model),
        None if agent.offline_fallback => ModelChoice::Offline(Some(why)),
        None => ModelChoice::Unavailable(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coditect_specs::{AgentSpec, Credentials, Provider};

    fn agent(provider: Provider, base: Option<&str>, fallback: bool) -> AgentSpec {
        AgentSpec {
            name: "a".into(),
            provider,
            model: Some("m".into()),
            role: Default::default(),
            credentials: provider.needs_credentials().then(|| Credentials {
                env: Some("CODITECT_TEST_KEY_THAT_IS_NEVER_SET".into()),
                secret_ref: None,
            }),
            base_url: base.map(str::to_string),
            offline_fallback: fallback,
            budget: Default::default(),
            reasoning: None,
        }
    }

    fn choose_here(agent: &AgentSpec) -> ModelChoice {
        choose(agent, Path::new("/nonexistent"))
    }

    fn provider_of(choice: &ModelChoice) -> Option<&str> {
        match choice {
            ModelChoice::Provider(m) => Some(m.provider()),
            _ => None,
        }
    }

    #[test]
    fn each_agent_gets_the_model_it_can_run() {
        assert!(matches!(
            choose_here(&agent(Provider::Offline, None, false)),
            ModelChoice::Offline(None)
        ));
        let local = choose_here(&agent(
            Provider::OpenaiCompatible,
            Some("http://127.0.0.1:11434/v1"),
            false,
        ));
        assert_eq!(provider_of(&local), Some("openai-compatible"));
        match choose_here(&agent(
            Provider::Anthropic,
            Some("https://api.anthropic.com"),
            true,
        )) {
            ModelChoice::Offline(Some(why)) => assert!(
                why.contains("CODITECT_TEST_KEY_THAT_IS_NEVER_SET is not set"),
                "{why}"
            ),
            _ => panic!("a missing key with offlineFallback runs the offline planner"),
        }
        assert!(matches!(
            choose_here(&agent(Provider::Google, None, false)),
            ModelChoice::Unavailable(_)
        ));
        // Hosted providers are HTTPS (rustls); the address no longer decides.
        let hosted = choose_here(&agent(
            Provider::OpenaiCompatible,
            Some("https://models.example/v1"),
            false,
        ));
        assert_eq!(provider_of(&hosted), Some("openai-compatible"));
        let mut codex = agent(Provider::Openai, None, false);
        codex.credentials = Some(Credentials {
            env: Some("PATH".into()), // set in every environment
            secret_ref: None,
        });
        assert_eq!(provider_of(&choose_here(&codex)), Some("openai"));
    }
}
