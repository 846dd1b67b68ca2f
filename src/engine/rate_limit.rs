//! The per-connection request budget: a token bucket, and a hold that a target's
//! `Retry-After` puts on every request to it.
//!
//! Written here rather than taken from `governor`: the engine needs the bucket and the
//! Retry-After hold to share one async wait that reconfigures live when an operator changes
//! a connection's rate, which is a few lines on tokio's clock and would otherwise mean a
//! second clock abstraction and its dependencies.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
    hold_until: Option<Instant>,
}

/// Paces requests to one target.
#[derive(Debug)]
pub struct RateLimiter(Mutex<Bucket>);

impl RateLimiter {
    /// `rate` requests per second with bursts of `burst` (0 rate: unlimited).
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1)).max(rate.ceil());
        Self(Mutex::new(Bucket {
            rate,
            burst,
            tokens: burst,
            refilled: Instant::now(),
            hold_until: None,
        }))
    }

    /// Changes the rate (from a connection's new settings).
    pub fn reconfigure(&self, rate: f64, burst: u32) {
        let mut b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        b.rate = rate;
        b.burst = f64::from(burst.max(1)).max(rate.ceil());
        b.tokens = b.tokens.min(b.burst);
    }

    /// No request may start before `until` (the target said `Retry-After`).
    pub fn hold_until(&self, until: Instant) {
        let mut b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if b.hold_until.is_none_or(|h| h < until) {
            b.hold_until = Some(until);
        }
    }

    /// When the current hold ends, if one is in force.
    pub fn held_until(&self) -> Option<Instant> {
        let b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        b.hold_until.filter(|h| *h > Instant::now())
    }

    /// Waits until a request may start, and takes its token.
    pub async fn acquire(&self) {
        loop {
            let wait = self.try_take(Instant::now());
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// Takes a token at `now`, or says how long to wait for one.
    fn try_take(&self, now: Instant) -> Option<Duration> {
        let mut b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = b.hold_until {
            if h > now {
                return Some(h - now);
            }
            b.hold_until = None;
        }
        if b.rate <= 0.0 {
            return None;
        }
        let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
        b.tokens = (b.tokens + elapsed * b.rate).min(b.burst);
        b.refilled = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            None
        } else {
            Some(
                Duration::try_from_secs_f64((1.0 - b.tokens) / b.rate)
                    .unwrap_or(Duration::from_secs(3600)),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_rate_after_the_burst() {
        let r = RateLimiter::new(10.0, 10);
        let start = Instant::now();
        for _ in 0..30 {
            r.acquire().await;
        }
        // 10 at once, then 20 more at 10/s.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1_900), "{took:?}");
        assert!(took <= Duration::from_millis(2_100), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_delays_every_request() {
        let r = RateLimiter::new(0.0, 0);
        let start = Instant::now();
        r.hold_until(start + Duration::from_secs(5));
        r.hold_until(start + Duration::from_secs(2)); // a shorter hold does not shorten it
        r.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(5));
        let again = Instant::now();
        r.acquire().await;
        assert!(again.elapsed() < Duration::from_millis(1));
    }
}
