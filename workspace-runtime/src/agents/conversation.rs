//! A task's conversation with its model, kept turn by turn in the `sessions` database.
//!
//! The agent loop appends every turn (the task, each answer with the provider's state,
//! each tool result) as it happens, one short commit each, so an instance killed between
//! two tool calls resumes the task where it was: the next request carries the same
//! history, with the thought signatures, reasoning and thinking blocks the provider
//! requires back. A call the model asked for whose result was not stored before the
//! crash is answered first, before the model is asked again.

use std::sync::Arc;

use crate::db::Databases;
use crate::error::StorageError;

use super::{ToolCall, Turn};

/// One task's conversation, as stored.
#[derive(Debug)]
pub struct Conversation {
    db: Arc<Databases>,
    task: i64,
    agent: String,
    turns: Vec<Turn>,
}

impl Conversation {
    /// The stored conversation of `task`; empty when it never started.
    ///
    /// # Errors
    /// When the database cannot be read, or a stored turn is not one this binary knows.
    pub fn load(db: Arc<Databases>, task: i64, agent: &str) -> Result<Self, StorageError> {
        let rows: Vec<String> = db.sessions.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT turn FROM conversation_turns WHERE task = ?1 ORDER BY step",
            )?;
            let rows = stmt.query_map([task], |r| r.get::<_, String>(0))?;
            rows.collect()
        })?;
        let turns = rows
            .iter()
            .map(|t| serde_json::from_str(t))
            .collect::<Result<Vec<Turn>, _>>()
            .map_err(|e| {
                StorageError::Corrupt(format!("task {task}'s stored conversation: {e}"))
            })?;
        Ok(Conversation {
            db,
            task,
            agent: agent.to_string(),
            turns,
        })
    }

    /// The turns so far.
    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    /// Whether nothing is stored yet (the task starts fresh).
    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }

    /// Appends `turn` and stores it before returning.
    ///
    /// # Errors
    /// When the commit fails (the turn is then not kept in memory either).
    pub fn push(&mut self, turn: Turn) -> Result<(), StorageError> {
        let step = self.turns.len() as i64;
        let json = serde_json::to_string(&turn)
            .map_err(|e| StorageError::Corrupt(format!("encode a turn: {e}")))?;
        self.db.sessions.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO conversation_turns (task, step, agent, turn) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![self.task, step, self.agent, json],
            )
        })?;
        self.turns.push(turn);
        Ok(())
    }

    /// How many answers of the model are stored (the task's steps so far).
    pub fn answers(&self) -> usize {
        self.turns
            .iter()
            .filter(|t| matches!(t, Turn::Assistant { .. }))
            .count()
    }

    /// Where the last answer of the model is.
    fn last_answer(&self) -> Option<usize> {
        self.turns
            .iter()
            .rposition(|t| matches!(t, Turn::Assistant { .. }))
    }

    /// The key of the step that runs call `call` of the last answer: the task, the
    /// answer's place in the conversation, the call's id (unique even where a provider
    /// reuses call ids from turn to turn).
    pub fn step_key(&self, call: &str) -> String {
        let turn = self.last_answer().unwrap_or_default();
        format!("task-{}/turn-{turn}/{call}", self.task)
    }

    /// The calls of the last answer that have no stored result yet, in order.
    pub fn unanswered(&self) -> Vec<ToolCall> {
        let Some(at) = self.last_answer() else {
            return Vec::new();
        };
        let Turn::Assistant { calls, .. } = &self.turns[at] else {
            return Vec::new();
        };
        let answered: Vec<&str> = self.turns[at + 1..]
            .iter()
            .filter_map(|t| match t {
                Turn::ToolResult { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        calls
            .iter()
            .filter(|c| !answered.contains(&c.id.as_str()))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(id: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: "read_file".into(),
            arguments: json!({"path": "a"}),
        }
    }

    #[test]
    fn a_conversation_survives_reopening_with_the_provider_state_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Databases::open(dir.path()).unwrap());
        let mut c = Conversation::load(db.clone(), 7, "kimi").unwrap();
        assert!(c.is_empty());
        c.push(Turn::User {
            text: "do it".into(),
        })
        .unwrap();
        let state = super::super::ProviderState::new(
            crate::agents::openai_compat::WIRE,
            json!({"reasoning_content": "I should read a first.\u{1F600}"}),
        );
        c.push(Turn::Assistant {
            text: String::new(),
            calls: vec![call("c1"), call("c2")],
            state: Some(state.clone()),
        })
        .unwrap();
        c.push(Turn::ToolResult {
            id: "c1".into(),
            ok: true,
            content: json!("x"),
        })
        .unwrap();
        drop(c);
        drop(db);

        let db = Arc::new(Databases::open(dir.path()).unwrap());
        let again = Conversation::load(db, 7, "kimi").unwrap();
        assert_eq!(again.turns().len(), 3);
        match &again.turns()[1] {
            Turn::Assistant { state: Some(s), .. } => assert_eq!(s, &state),
            other => panic!("{other:?}"),
        }
        let pending: Vec<String> = again.unanswered().into_iter().map(|c| c.id).collect();
        assert_eq!(pending, ["c2"], "the call whose result was not stored");
        assert_eq!(again.answers(), 1);
        assert_eq!(again.step_key("c2"), "task-7/turn-1/c2");
    }
}
