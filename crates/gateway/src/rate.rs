//! Per-source request rates: a token bucket per source (`governor`), refilled at `rate_limit` per
//! second up to `rate_burst`. Beyond it the answer is 429 with the time until the next request fits.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use switchboard_runtime::config::GatewayConfig;

pub struct RateLimits {
    /// Sources without a limit have no entry.
    by_source: HashMap<String, DefaultDirectRateLimiter>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limited: Vec<&String> = self.by_source.keys().collect();
        formatter.debug_struct("RateLimits").field("limited_sources", &limited).finish()
    }
}

impl RateLimits {
    pub fn from_config(config: &GatewayConfig) -> RateLimits {
        let mut by_source = HashMap::new();
        for source in &config.sources {
            let rate = source.rate_limit.unwrap_or(config.rate_limit);
            let burst = source.rate_burst.unwrap_or(config.rate_burst);
            let (Some(rate), Some(burst)) = (NonZeroU32::new(rate), NonZeroU32::new(burst)) else {
                continue;
            };
            let quota = Quota::per_second(rate).allow_burst(burst);
            by_source.insert(source.name.clone(), RateLimiter::direct(quota));
        }
        RateLimits { by_source, clock: DefaultClock::default() }
    }

    /// Takes one request from `source`'s bucket, or says how long until one is available.
    pub fn check(&self, source: &str) -> Result<(), Duration> {
        let Some(limiter) = self.by_source.get(source) else {
            return Ok(());
        };
        limiter.check().map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use switchboard_runtime::Secret;
    use switchboard_runtime::config::SourceConfig;

    use super::*;

    #[test]
    fn each_source_has_its_own_bucket() {
        let mut slow = SourceConfig::with_tokens("slow", vec![Secret::new("a")]);
        slow.rate_limit = Some(1);
        slow.rate_burst = Some(2);
        let mut unlimited = SourceConfig::with_tokens("unlimited", vec![Secret::new("b")]);
        unlimited.rate_limit = Some(0);
        let config = GatewayConfig { sources: vec![slow, unlimited], ..GatewayConfig::default() };
        let limits = RateLimits::from_config(&config);
        assert!(limits.check("slow").is_ok());
        assert!(limits.check("slow").is_ok());
        let wait = limits.check("slow").expect_err("the burst is spent");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        for _ in 0..100 {
            assert!(limits.check("unlimited").is_ok());
        }
    }
}
