//! The KPI scenarios. Each measures one metric through the gateway, as a client would.

mod availability;
mod locks;
mod reconnect;
mod tasks;
mod wake;

pub use availability::availability;
pub use locks::{lock_contended, lock_during_starts, lock_uncontended};
pub use reconnect::reconnect;
pub use tasks::task_start;
pub use wake::{WakeRun, wake};

/// Every scenario, in the order a run takes them.
pub const ALL: [&str; 7] = [
    "reconnect",
    "task_start",
    "lock_uncontended",
    "lock_contended",
    "availability",
    "wake",
    // Last: it starts (and then removes) as many workspaces again.
    "lock_during_starts",
];
