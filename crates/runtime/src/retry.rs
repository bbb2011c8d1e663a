//! The one retry policy: exponential pauses with jitter (from `backon`), for waiting on something
//! that is down (NATS, a database, a stream, a consumer) or briefly refusing (a stream without a
//! leader). Jitter keeps replicas that lost the same dependency from retrying in step.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Pauses from `first`, doubling up to `max`, each with up to as much again of jitter; endless
/// (callers stop on shutdown or at their own deadline).
pub fn pauses(first: Duration, max: Duration) -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The pauses for waiting on a dependency that is down: 250 ms doubling to 5 s, with jitter.
pub fn waiting() -> impl Iterator<Item = Duration> + Send {
    pauses(Duration::from_millis(250), Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_their_bound_with_jitter_and_never_end() {
        let first = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let pauses: Vec<Duration> = pauses(first, max).take(40).collect();
        assert_eq!(pauses.len(), 40, "endless");
        for pause in &pauses {
            assert!(*pause >= first && *pause <= max * 2, "{pause:?}");
        }
        assert!(pauses[..3].iter().all(|pause| *pause < Duration::from_millis(800)), "{pauses:?}");
        assert!(pauses[30..].iter().all(|pause| *pause >= max), "{pauses:?}");
        let again: Vec<Duration> = super::pauses(first, max).take(40).collect();
        assert_ne!(pauses, again, "jittered");
    }
}
