//! Latency histograms and the result tables every benchmark prints.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies in microseconds, from 1 µs to 60 s at three significant digits.
#[derive(Debug, Clone)]
pub(crate) struct Latencies(Histogram<u64>);

impl Latencies {
    pub(crate) fn new() -> Latencies {
        // Bounds and precision are constants within hdrhistogram's limits.
        Latencies(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"))
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, 60_000_000);
        // In bounds by the clamp above.
        let _ = self.0.record(micros);
    }

    pub(crate) fn merge(&mut self, other: &Latencies) {
        let _ = self.0.add(&other.0);
    }

    pub(crate) fn count(&self) -> u64 {
        self.0.len()
    }

    pub(crate) fn quantile(&self, quantile: f64) -> Duration {
        Duration::from_micros(self.0.value_at_quantile(quantile))
    }

    pub(crate) fn max(&self) -> Duration {
        Duration::from_micros(self.0.max())
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub(crate) struct LoadResult {
    pub(crate) name: String,
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latencies: Latencies,
}

impl LoadResult {
    pub(crate) fn new(name: impl Into<String>) -> LoadResult {
        LoadResult {
            name: name.into(),
            ok: 0,
            failed: 0,
            elapsed: Duration::ZERO,
            latencies: Latencies::new(),
        }
    }

    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Adds another run of the same target (rounds are interleaved with the baseline's).
    pub(crate) fn absorb(&mut self, other: &LoadResult) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.elapsed += other.elapsed;
        self.latencies.merge(&other.latencies);
    }
}

pub(crate) fn millis(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

/// Prints load results as a table, with throughput and p99 as ratios to the first row.
pub(crate) fn print_load_table(title: &str, results: &[LoadResult]) {
    println!("\n{title}");
    println!(
        "{:<28} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9}",
        "target", "req/s", "failed", "p50 ms", "p99 ms", "p999 ms", "max ms", "× rate", "× p99"
    );
    let Some(baseline) = results.first() else { return };
    for result in results {
        println!(
            "{:<28} {:>10.0} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10.3} {:>9.3}",
            result.name,
            result.rate(),
            result.failed,
            millis(result.latencies.quantile(0.5)),
            millis(result.latencies.quantile(0.99)),
            millis(result.latencies.quantile(0.999)),
            millis(result.latencies.max()),
            result.rate() / baseline.rate().max(f64::EPSILON),
            result.latencies.quantile(0.99).as_secs_f64()
                / baseline.latencies.quantile(0.99).as_secs_f64().max(f64::EPSILON),
        );
    }
}

/// The median of a few measurements (rounds), robust to one disturbed round.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn quantiles_come_from_the_recorded_values() {
        let mut latencies = Latencies::new();
        for millis in 1..=100 {
            latencies.record(Duration::from_millis(millis));
        }
        assert_eq!(latencies.count(), 100);
        let p50 = latencies.quantile(0.5).as_millis();
        let p99 = latencies.quantile(0.99).as_millis();
        assert!((49..=51).contains(&p50), "p50 {p50}");
        assert!((98..=100).contains(&p99), "p99 {p99}");
    }
}
