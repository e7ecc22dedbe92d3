//! The organization's awake count over time: how many of its workspaces hold an instance
//! or are starting one (phase Running, Starting or Waking), read from the control plane's
//! list at a fixed interval while a scenario runs. Latency histograms cannot show what a
//! wake scenario does to the awake quota (`quotas.maxAwakeWorkspaces`); this series does.
//!
//! The sampler is its own task, so a slow list answer delays the next sample, never the
//! scenario; a sample whose list fails is counted, not guessed.

use std::time::Duration;

use coditect_control_plane::client::Client;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// The phases in which a workspace counts as awake: it has an instance, or one is being
/// started for it (and so holds a place in the awake quota).
pub const AWAKE_PHASES: [&str; 3] = ["Running", "Starting", "Waking"];

/// One reading.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Sample {
    /// Milliseconds since sampling started.
    pub at_ms: u64,
    /// Workspaces of the organization awake then.
    pub awake: usize,
}

/// The readings of one scenario.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct AwakeSeries {
    /// The organization sampled.
    pub organization: String,
    /// The interval between readings.
    pub interval_ms: u64,
    /// The fewest awake in any reading (0 without readings).
    pub min: usize,
    /// The most awake in any reading.
    pub max: usize,
    /// Readings whose list request failed (left out of the series).
    pub failed_samples: u64,
    /// Every reading, in order.
    pub samples: Vec<Sample>,
}

impl AwakeSeries {
    fn push(&mut self, sample: Sample) {
        if self.samples.is_empty() {
            (self.min, self.max) = (sample.awake, sample.awake);
        } else {
            self.min = self.min.min(sample.awake);
            self.max = self.max.max(sample.awake);
        }
        self.samples.push(sample);
    }

    /// One line for people: `awake workspaces (loadtest, every 100ms, 61 samples): min 0,
    /// max 3`.
    pub fn line(&self) -> String {
        let failed = if self.failed_samples > 0 {
            format!(", {} failed", self.failed_samples)
        } else {
            String::new()
        };
        format!(
            "awake workspaces ({}, every {}ms, {} samples{failed}): min {}, max {}",
            self.organization,
            self.interval_ms,
            self.samples.len(),
            self.min,
            self.max
        )
    }
}

/// How many workspaces of a list answer (`{"items": [...]}`) are awake.
pub fn awake_in(list: &Value) -> Option<usize> {
    let items = list["items"].as_array()?;
    Some(
        items
            .iter()
            .filter(|w| {
                w["status"]["phase"]
                    .as_str()
                    .is_some_and(|p| AWAKE_PHASES.contains(&p))
            })
            .count(),
    )
}

/// A running sampler; [`Sampler::finish`] stops it and hands over the series.
#[derive(Debug)]
pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<AwakeSeries>,
}

impl Sampler {
    /// Starts reading `organization`'s workspaces from the control plane every `every`.
    pub fn start(client: Client, organization: &str, every: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let mut series = AwakeSeries {
            organization: organization.to_string(),
            interval_ms: u64::try_from(every.as_millis()).unwrap_or(u64::MAX),
            ..AwakeSeries::default()
        };
        let query = [("organization", organization.to_string())];
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    at = tick.tick() => {
                        let at_ms = u64::try_from(at.duration_since(started).as_millis())
                            .unwrap_or(u64::MAX);
                        let list = client
                            .get_json("/apis/coditect.io/v1/workspaces", &query)
                            .await;
                        match list.as_ref().ok().and_then(awake_in) {
                            Some(awake) => series.push(Sample { at_ms, awake }),
                            None => {
                                series.failed_samples += 1;
                                tracing::debug!(error = ?list.err(), "awake count: list failed");
                            }
                        }
                    }
                }
            }
            series
        });
        Sampler { stop, task }
    }

    /// Stops sampling; the series so far.
    pub async fn finish(self) -> AwakeSeries {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_running_starting_and_waking_workspaces_as_awake() {
        let list = json!({"items": [
            {"status": {"phase": "Running"}},
            {"status": {"phase": "Waking"}},
            {"status": {"phase": "Starting"}},
            {"status": {"phase": "Stopping"}},
            {"status": {"phase": "Asleep"}},
            {"status": {}},
        ]});
        assert_eq!(awake_in(&list), Some(3));
        assert_eq!(awake_in(&json!({"reason": "no"})), None);
    }

    #[test]
    fn the_series_keeps_its_extremes_and_says_them_in_one_line() {
        let mut s = AwakeSeries {
            organization: "loadtest".into(),
            interval_ms: 100,
            ..AwakeSeries::default()
        };
        for (i, awake) in [2, 0, 5, 1].into_iter().enumerate() {
            s.push(Sample {
                at_ms: i as u64 * 100,
                awake,
            });
        }
        assert_eq!((s.min, s.max), (0, 5));
        assert_eq!(
            s.line(),
            "awake workspaces (loadtest, every 100ms, 4 samples): min 0, max 5"
        );
    }
}
