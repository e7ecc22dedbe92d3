//! The KPI scenarios. Each measures one metric through the gateway, as a client would.

mod availability;
mod locks;
mod reconnect;
mod tasks;

pub use availability::availability;
pub use locks::{lock_contended, lock_uncontended};
pub use reconnect::reconnect;
pub use tasks::task_start;

/// Every scenario, in the order a run takes them.
pub const ALL: [&str; 5] = [
    "reconnect",
    "task_start",
    "lock_uncontended",
    "lock_contended",
    "availability",
];
