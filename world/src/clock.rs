//! Per-node clocks: each node reads a local clock that is offset (skew) from simulated
//! time and runs a little fast or slow (drift), within configured bounds. Local time only
//! moves forward.

use rand::Rng;

use crate::rng::SimRng;

/// Bounds on how far nodes' clocks disagree.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ClockConfig {
    /// Each node's clock starts ahead of simulated time by up to this much.
    pub skew_max_ns: u64,
    /// Each node's clock runs fast or slow by up to this many parts per million.
    pub drift_max_ppm: u32,
}

/// The largest drift accepted: 10%, far beyond any real oscillator, so that a mistake in
/// a scenario is caught and the arithmetic below can never make a clock run backwards.
pub const DRIFT_MAX_PPM_LIMIT: u32 = 100_000;

const PPM: i128 = 1_000_000;

#[derive(Clone, Debug)]
pub(crate) struct Clock {
    offset_ns: u64,
    drift_ppm: i32,
}

impl Clock {
    pub(crate) fn draw(config: &ClockConfig, rng: &mut SimRng) -> Clock {
        debug_assert!(config.drift_max_ppm <= DRIFT_MAX_PPM_LIMIT);
        let offset_ns = rng.random_range(0..=config.skew_max_ns);
        let drift_max = config.drift_max_ppm as i32;
        let drift_ppm = rng.random_range(-drift_max..=drift_max);
        Clock { offset_ns, drift_ppm }
    }

    /// The local reading at simulated time `now_ns`.
    pub(crate) fn local_ns(&self, now_ns: u64) -> u64 {
        if self.drift_ppm == 0 {
            return self.offset_ns + now_ns; // no 128-bit division on the common path
        }
        let drift_ns = i128::from(now_ns) * i128::from(self.drift_ppm) / PPM;
        let local = i128::from(self.offset_ns) + i128::from(now_ns) + drift_ns;
        u64::try_from(local).expect("local clock fits u64: drift is bounded below 100%")
    }

    /// The earliest simulated time at which the local clock reads `now + delay_ns` in
    /// local terms: a timer never fires early by the node's own clock.
    pub(crate) fn deadline_ns(&self, now_ns: u64, delay_ns: u64) -> u64 {
        let target = self.local_ns(now_ns).saturating_add(delay_ns);
        let mut estimate = now_ns.saturating_add(
            u64::try_from(i128::from(delay_ns) * PPM / (PPM + i128::from(self.drift_ppm)))
                .unwrap_or(u64::MAX),
        );
        while estimate > now_ns && self.local_ns(estimate - 1) >= target {
            estimate -= 1;
        }
        while self.local_ns(estimate) < target {
            estimate += 1;
        }
        estimate
    }

    /// A forward step of the clock (an NTP correction, a VM resumed).
    pub(crate) fn jump_forward(&mut self, forward_ns: u64) {
        self.offset_ns = self.offset_ns.saturating_add(forward_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_exact_and_local_time_is_monotonic() {
        for drift_ppm in [-100_000, -37, 0, 1, 999, 100_000] {
            let clock = Clock { offset_ns: 12_345, drift_ppm };
            let mut previous = 0;
            for now_ns in (0..5_000_000u64).step_by(99_991) {
                let local = clock.local_ns(now_ns);
                assert!(local >= previous, "drift {drift_ppm}: clock ran backwards");
                previous = local;
                for delay_ns in [0, 1, 7, 1_000, 123_456_789] {
                    let deadline = clock.deadline_ns(now_ns, delay_ns);
                    let target = clock.local_ns(now_ns) + delay_ns;
                    assert!(clock.local_ns(deadline) >= target, "drift {drift_ppm}: fired early");
                    assert!(
                        deadline == now_ns || clock.local_ns(deadline - 1) < target,
                        "drift {drift_ppm}: deadline {deadline} is not the earliest"
                    );
                }
            }
        }
    }
}
