//! Where the scheduler reads the time: the system's wall clock, or a clock that
//! runs faster (and can jump) so minute schedules can be tested in seconds.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

/// The wall clock the scheduler fires by.
///
/// Fire times are wall-clock times, but a task can only sleep on the monotonic
/// clock, which stops while the machine is suspended and does not follow
/// changes to the date. So the scheduler sleeps at most [`Clock::sleep_for`]
/// at a time and reads [`Clock::now`] again.
pub trait Clock: Send + Sync + 'static {
    /// The wall-clock time now.
    fn now(&self) -> DateTime<Utc>;

    /// How long to sleep, in real time, before reading the clock again while
    /// waiting for `until`.
    fn sleep_for(&self, until: DateTime<Utc>) -> Duration;
}

/// The system's clock. Read again at least once a minute, as cron does, so a
/// resumed machine or a changed date is noticed within a minute.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

/// The longest sleep between two readings of the system clock.
const RECHECK: Duration = Duration::from_secs(60);

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_for(&self, until: DateTime<Utc>) -> Duration {
        // A few milliseconds late beats waking just before the fire time.
        let wait = (until - Utc::now()).to_std().unwrap_or_default();
        (wait + Duration::from_millis(5)).min(RECHECK)
    }
}

/// A clock that starts at a given time and runs `factor` times faster than real
/// time, and can jump forward like a machine waking from sleep. For tests: at
/// factor 30 an every-minute job fires every two real seconds.
#[derive(Debug)]
pub struct ScaledClock {
    start: DateTime<Utc>,
    started: Instant,
    factor: u32,
    jumped: Mutex<TimeDelta>,
}

/// How often a scaled clock is read again while waiting: it may jump.
const SCALED_RECHECK: Duration = Duration::from_millis(50);

impl ScaledClock {
    /// A clock that reads `start` now and runs `factor` (at least 1) times faster.
    pub fn new(start: DateTime<Utc>, factor: u32) -> ScaledClock {
        ScaledClock {
            start,
            started: Instant::now(),
            factor: factor.max(1),
            jumped: Mutex::new(TimeDelta::zero()),
        }
    }

    /// Moves the clock forward by `by` at once.
    pub fn jump(&self, by: TimeDelta) {
        *self.jumped.lock().expect("clock lock") += by;
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.started.elapsed() * self.factor;
        let elapsed = TimeDelta::from_std(elapsed).expect("a test runs for less than an eon");
        self.start + elapsed + *self.jumped.lock().expect("clock lock")
    }

    fn sleep_for(&self, until: DateTime<Utc>) -> Duration {
        let wait = (until - self.now()).to_std().unwrap_or_default() / self.factor;
        (wait + Duration::from_millis(1)).min(SCALED_RECHECK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaled_clock_runs_fast_and_jumps() {
        let start = DateTime::parse_from_rfc3339("2026-01-05T00:00:00Z")
            .unwrap()
            .to_utc();
        let clock = ScaledClock::new(start, 60);
        std::thread::sleep(Duration::from_millis(100));
        let now = clock.now();
        assert!(now >= start + TimeDelta::seconds(6), "{now}");
        assert!(now < start + TimeDelta::seconds(600), "{now}");
        clock.jump(TimeDelta::hours(1));
        assert!(clock.now() >= now + TimeDelta::hours(1));
    }

    #[test]
    fn the_system_clock_is_read_again_within_a_minute() {
        let far = Utc::now() + TimeDelta::days(1);
        assert_eq!(SystemClock.sleep_for(far), Duration::from_secs(60));
        let past = Utc::now() - TimeDelta::days(1);
        assert!(SystemClock.sleep_for(past) < Duration::from_secs(1));
    }
}
