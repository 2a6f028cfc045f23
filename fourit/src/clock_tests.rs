//! Unit tests of `clock.rs`.

use super::*;

const SECOND: i64 = 1_000_000;

#[test]
fn a_forward_step_is_noticed_with_its_size() {
    let mut detector = StepDetector::default();
    assert_eq!(detector.observe(0, 5 * SECOND), None);
    assert_eq!(detector.observe(SECOND, 6 * SECOND), None);
    // One second of monotonic time, 31 of wall time.
    assert_eq!(detector.observe(2 * SECOND, 37 * SECOND), Some(30 * SECOND));
    // Then it goes on normally from the new time.
    assert_eq!(detector.observe(3 * SECOND, 38 * SECOND), None);
}

#[test]
fn a_backward_step_is_noticed_with_its_size() {
    let mut detector = StepDetector::default();
    assert_eq!(detector.observe(0, 100 * SECOND), None);
    assert_eq!(
        detector.observe(SECOND / 2, 70 * SECOND + SECOND / 2),
        Some(-30 * SECOND)
    );
    assert_eq!(detector.observe(SECOND, 71 * SECOND), None);
}

#[test]
fn slow_drift_is_not_a_step() {
    let mut detector = StepDetector::default();
    // 500 ppm (NTP's fastest slew) for a day, read every two seconds.
    let mut wall = 0i64;
    for i in 0..43_200i64 {
        let mono = i * 2 * SECOND;
        assert_eq!(detector.observe(mono, wall), None, "at reading {i}");
        wall += 2 * SECOND + 2 * SECOND * 500 / 1_000_000;
    }
    // An hour between readings at 500 ppm is 1.8 s of drift, still not a step.
    let mut detector = StepDetector::default();
    assert_eq!(detector.observe(0, 0), None);
    assert_eq!(detector.observe(3_600 * SECOND, 3_601_800_000), None);
}

#[test]
fn a_step_just_above_the_threshold_counts_and_one_below_does_not() {
    let threshold = threshold_us();
    let mut detector = StepDetector::default();
    assert_eq!(detector.observe(0, 0), None);
    assert_eq!(detector.observe(1_000, 1_000 + threshold - 1), None);
    let mut detector = StepDetector::default();
    assert_eq!(detector.observe(0, 0), None);
    assert_eq!(
        detector.observe(1_000, 1_000 + threshold + 100),
        Some(threshold + 100)
    );
}

#[test]
fn an_older_reading_is_ignored() {
    let mut detector = StepDetector::default();
    assert_eq!(detector.observe(10 * SECOND, 10 * SECOND), None);
    assert_eq!(detector.observe(9 * SECOND, 50 * SECOND), None);
    assert_eq!(detector.observe(11 * SECOND, 11 * SECOND), None);
}

/// A wall clock the test steps by hand; monotonic time is the real one.
#[derive(Debug, Default)]
struct SteppedClock {
    offset_us: std::sync::atomic::AtomicI64,
}

impl SteppedClock {
    fn step(&self, by: TimeDelta) {
        self.offset_us.fetch_add(
            by.num_microseconds().unwrap_or_default(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
            + TimeDelta::microseconds(self.offset_us.load(std::sync::atomic::Ordering::Relaxed))
    }
}

#[tokio::test]
async fn a_local_step_leaves_the_fleet_time_undisturbed_and_asks_to_re_measure() {
    let local = Arc::new(SteppedClock::default());
    let clock = FleetClock::new(local.clone());
    let before = clock.now();
    local.step(TimeDelta::seconds(30));
    let after = clock.now();
    let moved = after - before;
    assert!(
        moved < TimeDelta::milliseconds(5) && moved >= TimeDelta::zero(),
        "the fleet's time moved by {moved} across a 30 s step"
    );
    assert!(clock.step_pending());
    // The step woke the re-measurement (the permit waits for it).
    tokio::time::timeout(Duration::from_secs(1), clock.stepped())
        .await
        .unwrap_or_else(|_| panic!("no re-measurement was asked for"));
    let step = clock
        .take_pending_step()
        .unwrap_or_else(|| panic!("no pending step"));
    assert!(
        (step.local_us - 30 * SECOND).abs() < 5_000,
        "step noticed as {} µs",
        step.local_us
    );
    assert!(!clock.step_pending());
    // A backward step is absorbed the same way.
    local.step(TimeDelta::seconds(-90));
    let back = clock.now() - after;
    assert!(back < TimeDelta::milliseconds(5) && back >= TimeDelta::zero());
}

#[tokio::test]
async fn a_sample_far_from_the_others_drops_them_and_moves_the_clock_at_once() {
    let clock = FleetClock::new(Arc::new(SystemClock));
    let local_us = || Utc::now().timestamp_micros();
    for _ in 0..5 {
        let start = clock.sample_start();
        clock.record(start, local_us() + 2_000);
    }
    assert!((clock.offset_us() - 2_000).abs() < 1_000);
    let mut epoch = clock.epoch();
    epoch.mark_unchanged();
    // The coordinator's clock steps back a minute: one sample is enough to follow it.
    let start = clock.sample_start();
    let offset = clock.record(start, local_us() - 60 * SECOND);
    assert!((offset + 60 * SECOND).abs() < 5_000, "offset {offset}");
    assert!(
        epoch.has_changed().unwrap_or(false),
        "the driver is told to re-plan"
    );
    let pending = clock
        .take_pending_step()
        .unwrap_or_else(|| panic!("the jump is pending re-measurement"));
    assert_eq!(pending.local_us, 0);
    assert!((pending.offset_jump_us + 60 * SECOND + 2_000).abs() < 5_000);
}

#[tokio::test]
async fn samples_within_their_round_trip_keep_the_best() {
    let clock = FleetClock::new(Arc::new(SystemClock));
    let local_us = || Utc::now().timestamp_micros();
    let start = clock.sample_start();
    clock.record(start, local_us() + 300);
    let mut epoch = clock.epoch();
    epoch.mark_unchanged();
    for _ in 0..20 {
        let start = clock.sample_start();
        clock.record(start, local_us() + 300 + 2_000);
    }
    assert!(
        !epoch.has_changed().unwrap_or(true),
        "small differences are not jumps"
    );
    assert!(!clock.step_pending());
}

#[test]
fn the_fleet_clock_keeps_the_local_clocks_precision() {
    // The driver tells a real clock from a paused test clock by two readings being equal: a
    // fleet clock rounded to whole microseconds made it sleep on tokio's millisecond timer
    // before every tick, starting runs up to a millisecond late.
    let clock = FleetClock::new(Arc::new(SystemClock));
    let start = clock.sample_start();
    clock.record(start, Utc::now().timestamp_micros() + 1_234);
    let sub_microsecond = (0..100)
        .map(|_| clock.now().timestamp_subsec_nanos() % 1_000)
        .any(|nanos| nanos != 0);
    assert!(
        sub_microsecond,
        "every reading was rounded to a whole microsecond"
    );
}
