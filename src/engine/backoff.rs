//! Retry delays: exponential back-off with jitter, and the target's `Retry-After` when later.

use std::time::Duration;

/// The delay before attempt `attempt + 1` after `attempt` failed (1-based): `base * 2^(n-1)`
/// capped at `max`, then scaled by a jitter factor in [0.5, 1.0] taken from `jitter` (a number
/// in [0, 1)), so workers that failed together do not retry together. A `retry_after` from the
/// target wins when it is longer.
pub fn retry_delay(
    attempt: u32,
    base: Duration,
    max: Duration,
    jitter: f64,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    let raw = base.saturating_mul(1u32 << exp.min(31)).min(max);
    let factor = 0.5 + 0.5 * jitter.clamp(0.0, 1.0);
    let backoff = raw.mul_f64(factor);
    match retry_after {
        Some(ra) if ra > backoff => ra,
        _ => backoff,
    }
}

/// A uniformly distributed number in [0, 1) from the OS generator (0.5 if it fails).
pub fn jitter() -> f64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_per_attempt_up_to_the_cap() {
        let max = Duration::from_secs(60);
        let d: Vec<u64> = (1..=9)
            .map(|n| retry_delay(n, S, max, 1.0, None).as_secs())
            .collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        // Absurd attempt counts neither overflow nor exceed the cap.
        assert_eq!(retry_delay(u32::MAX, S, max, 1.0, None), max);
    }

    #[test]
    fn jitter_keeps_between_half_and_full() {
        let max = Duration::from_secs(60);
        assert_eq!(retry_delay(3, S, max, 0.0, None), Duration::from_secs(2));
        assert_eq!(retry_delay(3, S, max, 1.0, None), Duration::from_secs(4));
        for _ in 0..1000 {
            let d = retry_delay(3, S, max, jitter(), None);
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retry_after_wins_only_when_longer() {
        let max = Duration::from_secs(60);
        let ra = Some(Duration::from_secs(30));
        assert_eq!(retry_delay(1, S, max, 1.0, ra), Duration::from_secs(30));
        assert_eq!(
            retry_delay(7, S, max, 1.0, Some(Duration::from_secs(5))),
            Duration::from_secs(60)
        );
    }
}
