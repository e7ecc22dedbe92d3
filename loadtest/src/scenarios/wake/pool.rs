//! Who holds each workspace of the wake scenario: asleep and free to aim a user at, being
//! woken by a user's request, or being put back to sleep. One party at a time; the pool
//! is the only place that decides, under one lock, so two arrivals never count the same
//! wake and a re-sleep overtaken by an arrival never hands back a workspace that is awake.
//!
//! Every re-sleep gets a fresh epoch. An arrival that takes a workspace still settling
//! ends that epoch; the overtaken re-sleep's later word (the phases it watched, "asleep")
//! is then ignored.

use tokio::time::Instant;

/// What a workspace is doing, as far as the scenario is concerned.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    /// Seen asleep (phase Asleep with the sleep wish recorded) since `since`.
    Asleep { since: Instant },
    /// A user's request is on its way to it, and no re-sleep has been asked yet.
    Waking,
    /// Put back to sleep at `since` (the wish is stored), not yet seen asleep; `phase` is
    /// the last phase its re-sleep saw.
    Settling {
        since: Instant,
        epoch: u64,
        phase: String,
    },
    /// Out of the rotation: it could not be put back to sleep.
    Retired,
}

/// Where an arrival goes, and whether its answer is a wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aim {
    /// A workspace seen asleep: a wake.
    Asleep(usize),
    /// A workspace still being put back to sleep (the gateway holds the request). A
    /// wake when its instance was already `stopping` (or it was asleep and not yet seen
    /// so): the user waits for the rest of the stop and for the start. Otherwise its
    /// instance still ran and answers: not a wake.
    Settling { workspace: usize, stopping: bool },
    /// Every workspace is being woken: the request joins one of those wakes part-way,
    /// which is not a wake of its own.
    Joined(usize),
}

impl Aim {
    /// The workspace aimed at.
    pub fn workspace(self) -> usize {
        match self {
            Aim::Asleep(w) | Aim::Settling { workspace: w, .. } | Aim::Joined(w) => w,
        }
    }

    /// Whether the arrival now holds the workspace (and puts it back to sleep after).
    pub fn holds(self) -> bool {
        !matches!(self, Aim::Joined(_))
    }

    /// Whether the answer measures a wake.
    pub fn is_wake(self) -> bool {
        matches!(self, Aim::Asleep(_) | Aim::Settling { stopping: true, .. })
    }
}

/// The scenario's workspaces, by index into the run's list.
#[derive(Debug)]
pub struct Pool {
    slots: Vec<Slot>,
    epochs: u64,
}

impl Pool {
    /// A pool of workspaces seen asleep (indices into the run's list); others are out of
    /// the rotation.
    pub fn new(total: usize, asleep: &[usize], now: Instant) -> Self {
        let slots = (0..total)
            .map(|w| {
                if asleep.contains(&w) {
                    Slot::Asleep { since: now }
                } else {
                    Slot::Retired
                }
            })
            .collect();
        Pool { slots, epochs: 0 }
    }

    /// How many workspaces are in the rotation.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| **s != Slot::Retired).count()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where arrival number `n` goes: the workspace asleep longest; else the one put back
    /// to sleep longest ago; else (every one is being woken) one of those, by `n`. `None`
    /// when no workspace is in the rotation.
    pub fn take(&mut self, n: u64) -> Option<Aim> {
        let oldest = |want: fn(&Slot) -> Option<Instant>| {
            self.slots
                .iter()
                .enumerate()
                .filter_map(|(w, s)| want(s).map(|since| (since, w)))
                .min()
                .map(|(_, w)| w)
        };
        let aim = if let Some(w) = oldest(|s| match s {
            Slot::Asleep { since } => Some(*since),
            _ => None,
        }) {
            Aim::Asleep(w)
        } else if let Some(w) = oldest(|s| match s {
            Slot::Settling { since, .. } => Some(*since),
            _ => None,
        }) {
            let stopping = matches!(&self.slots[w], Slot::Settling { phase, .. } if phase == "Stopping" || phase == "Asleep");
            Aim::Settling {
                workspace: w,
                stopping,
            }
        } else {
            let waking: Vec<usize> = (0..self.slots.len())
                .filter(|w| self.slots[*w] == Slot::Waking)
                .collect();
            let pick = usize::try_from(n).unwrap_or(0) % waking.len().max(1);
            return waking.get(pick).map(|w| Aim::Joined(*w));
        };
        self.slots[aim.workspace()] = Slot::Waking;
        Some(aim)
    }

    /// `w`'s re-sleep has been asked (the wish is stored) at `now`; the epoch its re-sleep
    /// reports under.
    pub fn settling(&mut self, w: usize, now: Instant) -> u64 {
        self.epochs += 1;
        self.slots[w] = Slot::Settling {
            since: now,
            epoch: self.epochs,
            phase: "Running".into(),
        };
        self.epochs
    }

    /// The re-sleep of `epoch` saw `w` in `phase`.
    pub fn seen(&mut self, w: usize, epoch: u64, phase: &str) {
        if let Slot::Settling {
            epoch: current,
            phase: seen,
            ..
        } = &mut self.slots[w]
            && *current == epoch
        {
            *seen = phase.to_string();
        }
    }

    /// The re-sleep of `epoch` saw `w` asleep at `now`: free to aim at, unless an arrival
    /// took it meanwhile.
    pub fn settled(&mut self, w: usize, epoch: u64, now: Instant) {
        if matches!(&self.slots[w], Slot::Settling { epoch: current, .. } if *current == epoch) {
            self.slots[w] = Slot::Asleep { since: now };
        }
    }

    /// `w` could not be put back to sleep: out of the rotation.
    pub fn retire(&mut self, w: usize) {
        self.slots[w] = Slot::Retired;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn arrivals_go_to_the_longest_asleep_then_the_longest_settling_then_join() {
        let t0 = Instant::now();
        let mut pool = Pool::new(3, &[0, 1, 2], t0);
        assert_eq!(pool.take(0), Some(Aim::Asleep(0)));
        assert_eq!(pool.take(1), Some(Aim::Asleep(1)));
        let e0 = pool.settling(0, t0 + Duration::from_millis(10));
        assert_eq!(pool.take(2), Some(Aim::Asleep(2)));
        // Nothing asleep: the one settling; still Running, so not a wake.
        let aim = pool.take(3).unwrap();
        assert_eq!(
            aim,
            Aim::Settling {
                workspace: 0,
                stopping: false
            }
        );
        assert!(aim.holds() && !aim.is_wake());
        // The overtaken re-sleep's word no longer counts.
        pool.seen(0, e0, "Asleep");
        pool.settled(0, e0, t0 + Duration::from_millis(20));
        let joined = pool.take(4).unwrap();
        assert!(matches!(joined, Aim::Joined(_)) && !joined.holds() && !joined.is_wake());
        // Once stopping, an arrival at a settling workspace is a wake.
        let e1 = pool.settling(1, t0 + Duration::from_millis(30));
        pool.seen(1, e1, "Stopping");
        assert_eq!(
            pool.take(5),
            Some(Aim::Settling {
                workspace: 1,
                stopping: true
            })
        );
    }

    #[test]
    fn a_settled_workspace_is_free_again_and_retired_ones_are_never_aimed_at() {
        let t0 = Instant::now();
        let mut pool = Pool::new(2, &[1], t0);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.take(0), Some(Aim::Asleep(1)));
        let e = pool.settling(1, t0);
        pool.settled(1, e, t0 + Duration::from_millis(5));
        assert_eq!(pool.take(1), Some(Aim::Asleep(1)));
        pool.retire(1);
        assert!(pool.is_empty());
        assert_eq!(pool.take(2), None);
    }
}
