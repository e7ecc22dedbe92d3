//! Memory of a process and its children, read from `/proc`, for benches that run a control
//! plane in their own process and its instances as child processes.
//!
//! RSS counts every page a process has resident, shared ones included, so a sum of RSS
//! over many instances of one binary counts the binary's text once per process; PSS
//! (`smaps_rollup`) divides each shared page among its sharers, so a sum of PSS is what
//! the tree really holds. Both are reported; the peak is taken on the RSS total. Reading
//! `smaps_rollup` walks a process's page tables, which is not free with 50 processes five
//! times a second (a profile of the scale bench showed it at 11% of the control plane's
//! CPU), so the [`Sampler`] reads PSS only when RSS reaches a new peak.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One reading of this process and its live (non-zombie) children.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// When, since the sampler started.
    pub at: Duration,
    /// This process's RSS, bytes.
    pub own_rss: u64,
    /// This process's PSS, bytes.
    pub own_pss: u64,
    /// Live children.
    pub children: usize,
    /// Sum of the children's RSS, bytes.
    pub children_rss: u64,
    /// Sum of the children's PSS, bytes.
    pub children_pss: u64,
}

impl Sample {
    /// This process plus its children, RSS.
    pub fn total_rss(&self) -> u64 {
        self.own_rss + self.children_rss
    }

    /// This process plus its children, PSS.
    pub fn total_pss(&self) -> u64 {
        self.own_pss + self.children_pss
    }
}

/// `Key:   1234 kB` from a `/proc` file, in bytes.
fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// RSS of `pid` in bytes (0 for what cannot be read: a process just gone).
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| kb_field(&t, "VmRSS:"))
        .unwrap_or(0)
}

/// PSS of `pid` in bytes (0 for what cannot be read).
fn pss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| kb_field(&t, "Pss:"))
        .unwrap_or(0)
}

/// The live children of `parent` (zombies are gone already as far as memory goes).
pub fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // pid (comm) state ppid …; comm may hold spaces and parentheses.
            let mut rest = stat
                .rsplit_once(')')
                .map_or("", |(_, r)| r)
                .split_whitespace();
            let state = rest.next();
            let ppid = rest.next().and_then(|p| p.parse::<u32>().ok());
            ppid == Some(parent) && state != Some("Z")
        })
        .collect()
}

/// Reads this process and its children now, RSS and PSS.
pub fn sample(at: Duration) -> Sample {
    let pids = children(std::process::id());
    with_pss(sample_rss(at, &pids), &pids)
}

/// RSS only, of this process and `children`.
fn sample_rss(at: Duration, children: &[u32]) -> Sample {
    Sample {
        at,
        own_rss: rss(std::process::id()),
        children: children.len(),
        children_rss: children.iter().map(|&p| rss(p)).sum(),
        ..Sample::default()
    }
}

/// `s` with the PSS of this process and `children` filled in.
fn with_pss(mut s: Sample, children: &[u32]) -> Sample {
    s.own_pss = pss(std::process::id());
    s.children_pss = children.iter().map(|&p| pss(p)).sum();
    s
}

/// Samples on a thread of its own until stopped; keeps the peak (by total RSS, with its
/// PSS), the most children seen at once, and the last reading.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Readings>,
}

/// What a [`Sampler`] saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Readings {
    /// The reading with the largest total RSS.
    pub peak: Sample,
    /// The most live children at once.
    pub most_children: usize,
    /// The last reading (RSS only).
    pub last: Sample,
    /// How many readings.
    pub count: usize,
}

impl Sampler {
    /// Starts sampling every `every`.
    pub fn start(every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut r = Readings::default();
            while !flag.load(Ordering::Relaxed) {
                let pids = children(std::process::id());
                let s = sample_rss(t0.elapsed(), &pids);
                if s.total_rss() > r.peak.total_rss() {
                    r.peak = with_pss(s, &pids);
                }
                r.most_children = r.most_children.max(s.children);
                r.last = s;
                r.count += 1;
                std::thread::sleep(every);
            }
            r
        });
        Sampler { stop, thread }
    }

    /// Stops sampling and returns what it saw.
    pub fn finish(self) -> Readings {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_in_kb() {
        let text = "Name:\tx\nVmRSS:\t    2048 kB\nPss: 7 kB\n";
        assert_eq!(kb_field(text, "VmRSS:"), Some(2048 * 1024));
        assert_eq!(kb_field(text, "Pss:"), Some(7 * 1024));
        assert_eq!(kb_field(text, "Nope:"), None);
    }

    #[test]
    fn sees_itself_and_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        let s = sample(Duration::ZERO);
        let _ = child.kill();
        let _ = child.wait();
        assert!(s.own_rss > 0);
        assert!(s.children >= 1, "{s:?}");
        assert!(s.children_rss > 0, "{s:?}");
    }
}
