//! The message bus: direct (agent → agent) and topic messages between agents, persisted
//! in the messages database, delivered live to subscribers, and replayable by id so a
//! reconnecting client picks up exactly where it left off.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::clock;
use crate::db::Databases;
use crate::error::BusError;
use crate::events::{EventDraft, EventLog, EventType};

/// A message as stored and delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Increasing id; replay with `since`.
    pub id: i64,
    /// Milliseconds since the epoch.
    pub ts: i64,
    /// The sender.
    pub from: String,
    /// The recipient agent, for a direct message.
    pub to: Option<String>,
    /// The topic, for a topic message.
    pub topic: Option<String>,
    /// The content.
    pub body: Value,
}

/// A message to send: exactly one of `to` and `topic`.
#[derive(Debug, Clone, Deserialize)]
pub struct SendMessage {
    /// The sender.
    pub from: String,
    /// A recipient agent.
    #[serde(default)]
    pub to: Option<String>,
    /// A topic.
    #[serde(default)]
    pub topic: Option<String>,
    /// The content.
    pub body: Value,
}

/// Which messages a reader wants: direct ones to `agent`, and those on `topics`.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Direct messages to this agent.
    pub agent: Option<String>,
    /// Messages on these topics.
    pub topics: BTreeSet<String>,
}

impl MessageFilter {
    /// Whether `m` is for this reader.
    pub fn matches(&self, m: &Message) -> bool {
        let direct = self.agent.is_some() && m.to == self.agent;
        let topic = m.topic.as_ref().is_some_and(|t| self.topics.contains(t));
        direct || topic || (self.agent.is_none() && self.topics.is_empty())
    }
}

/// The workspace's bus.
#[derive(Debug)]
pub struct MessageBus {
    db: Arc<Databases>,
    events: EventLog,
    agents: BTreeSet<String>,
    live: broadcast::Sender<Arc<Message>>,
    /// Makes "store, then publish" one step, so subscribers see messages in id order
    /// (they skip ids they have already seen; out-of-order delivery would lose one).
    publish: std::sync::Mutex<()>,
}

impl MessageBus {
    /// A bus between the named agents.
    pub fn new(
        db: Arc<Databases>,
        events: EventLog,
        agents: impl IntoIterator<Item = String>,
    ) -> Self {
        let (live, _) = broadcast::channel(4096);
        MessageBus {
            db,
            events,
            agents: agents.into_iter().collect(),
            live,
            publish: std::sync::Mutex::new(()),
        }
    }

    /// Stores and delivers a message; returns it once its `message_sent` event is durable.
    ///
    /// # Errors
    /// [`BusError::NoRecipient`], [`BusError::UnknownAgent`], storage failures.
    pub async fn send(&self, m: SendMessage) -> Result<Message, BusError> {
        if m.to.is_some() == m.topic.is_some() {
            return Err(BusError::NoRecipient);
        }
        if let Some(to) = &m.to
            && !self.agents.contains(to)
        {
            return Err(BusError::UnknownAgent(to.clone()));
        }
        let ts = clock::now_ms() as i64;
        let body = m.body.to_string();
        let message = {
            let _in_order = self.publish.lock().unwrap_or_else(|p| p.into_inner());
            let id = self.db.messages.write(|tx| {
                tx.execute(
                    "INSERT INTO messages (ts, sender, recipient, topic, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![ts, m.from, m.to, m.topic, body],
                )?;
                Ok(tx.last_insert_rowid())
            })?;
            let message = Message {
                id,
                ts,
                from: m.from,
                to: m.to,
                topic: m.topic,
                body: m.body,
            };
            let _ = self.live.send(Arc::new(message.clone()));
            message
        };
        self.events
            .append(EventDraft::new(
                &message.from,
                EventType::MessageSent,
                json!({"message": message.id, "to": message.to, "topic": message.topic}),
            ))
            .await?;
        Ok(message)
    }

    /// Stored messages matching `filter` with `id > since`, oldest first.
    ///
    /// # Errors
    /// Storage failures.
    pub fn history(
        &self,
        filter: &MessageFilter,
        since: i64,
        limit: u32,
    ) -> Result<Vec<Message>, BusError> {
        // Filter in SQL, so a long history is never loaded to answer a short question.
        let everything = filter.agent.is_none() && filter.topics.is_empty();
        let topics = serde_json::to_string(&filter.topics).unwrap_or_else(|_| "[]".into());
        Ok(self.db.messages.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, ts, sender, recipient, topic, body FROM messages
                 WHERE id > ?1
                   AND (?2 OR recipient = ?3 OR topic IN (SELECT value FROM json_each(?4)))
                 ORDER BY id LIMIT ?5",
            )?;
            stmt.query_map(
                rusqlite::params![since, everything, filter.agent, topics, limit],
                |r| {
                    let body: String = r.get(5)?;
                    Ok(Message {
                        id: r.get(0)?,
                        ts: r.get(1)?,
                        from: r.get(2)?,
                        to: r.get(3)?,
                        topic: r.get(4)?,
                        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
                    })
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?)
    }

    /// Live messages from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Message>> {
        self.live.subscribe()
    }
}
