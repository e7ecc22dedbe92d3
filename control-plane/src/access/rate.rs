//! A rate limit per token: a token bucket each, refilled at `per_second` up to `burst`.
//! A request that finds its bucket empty is refused with 429 and `Retry-After`, before
//! any work is done for it. Cluster admins are exempt (like Kubernetes' exempt priority
//! level for `system:masters`), so an operator is never locked out by their own scripts.
//!
//! Time is `tokio::time::Instant`, so tests drive it with a paused clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How many requests a token may make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may come at once after a quiet spell.
    pub burst: u32,
}

impl Default for RateLimit {
    /// 100 requests a second, bursts of 200: far above a person or a studio, well below
    /// what would crowd other users off two cores.
    fn default() -> Self {
        RateLimit {
            per_second: 100.0,
            burst: 200,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets, one per token id.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter with `limit` for every token.
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `token`'s bucket, or says how long until one is there.
    ///
    /// # Errors
    /// The wait until the next request would be allowed.
    pub fn take(&self, token: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let burst = f64::from(self.limit.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(token.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * self.limit.per_second;
        b.tokens = (b.tokens + refill).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - b.tokens;
        Err(Duration::from_secs_f64(
            missing / self.limit.per_second.max(f64::MIN_POSITIVE),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_sustained_rate() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 10.0,
            burst: 5,
        });
        for _ in 0..5 {
            limiter.take("a").unwrap();
        }
        let wait = limiter.take("a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another token has its own bucket.
        limiter.take("b").unwrap();
        tokio::time::advance(Duration::from_millis(100)).await;
        limiter.take("a").unwrap();
        assert!(limiter.take("a").is_err());
        // A quiet spell refills up to the burst, not beyond.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..5 {
            limiter.take("a").unwrap();
        }
        assert!(limiter.take("a").is_err());
    }
}
