//! The scheduler's round-trip events: when someone listens, the coordinator is wrapped in
//! [`Observed`] with an observer that reports each call's round trip
//! ([`Event::RoundTrip`]); the forwarding itself is `Observed`'s, so nothing is lost.

use std::sync::Arc;
use std::time::Duration;

use crate::coordinator::{Call, Coordinator, Observed, Observer};
use crate::events::{Event, Events};

/// Reports the round trip of every call to the scheduler's listeners.
#[derive(Debug)]
struct RoundTrips {
    events: Arc<Events>,
}

impl Observer for RoundTrips {
    fn observe(&self, _call: Call<'_>) {}

    fn answered(&self, call: Call<'_>, elapsed: Duration, ok: bool) {
        self.events.emit(&Event::RoundTrip {
            operation: call.operation(),
            duration: elapsed,
            ok,
        });
    }
}

/// `inner`, each call's round trip told to `events`.
pub(crate) fn timed(inner: Arc<dyn Coordinator>, events: Arc<Events>) -> Arc<dyn Coordinator> {
    Arc::new(Observed::new(inner, Arc::new(RoundTrips { events })))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use crate::coordinator::{Coordinator, JobDefinition, MemoryCoordinator};
    use crate::events::{Event, Events, Listener};
    use crate::job::Overlap;

    /// The manual runs and the catalog go through the timed coordinator too (they were once
    /// answered by a default there, so a listening scheduler lost `fourit trigger`), each
    /// round trip told.
    #[tokio::test]
    async fn manual_runs_and_the_catalog_are_forwarded_and_timed() {
        let memory = Arc::new(MemoryCoordinator::new());
        let told = Arc::new(Mutex::new(Vec::new()));
        let listener: Arc<dyn Listener> = Arc::new({
            let told = told.clone();
            move |event: &Event<'_>| {
                if let Event::RoundTrip { operation, ok, .. } = event
                    && let Ok(mut told) = told.lock()
                {
                    told.push((*operation, *ok));
                }
            }
        });
        let timed = super::timed(memory.clone(), Arc::new(Events::new(vec![listener])));
        let job = JobDefinition {
            name: "job".to_string(),
            schedule: "* * * * * *".to_string(),
            timezone: "UTC".to_string(),
            overlap: Overlap::Skip,
            timeout: None,
            grace: None,
            location: "here:1".to_string(),
            version: None,
        };
        let registered = timed.register("node", std::slice::from_ref(&job)).await;
        assert_eq!(
            registered.ok().map(|r| r.len()),
            Some(1),
            "the registration reached the memory coordinator"
        );
        let asked = crate::coordinator::Admin::request_manual(&*memory, "job", "test", false).await;
        assert!(asked.is_ok(), "asked: {asked:?}");
        let waiting = timed.manual_requests().await.unwrap_or_default();
        assert_eq!(
            waiting.len(),
            1,
            "the waiting manual run is seen through the wrapper"
        );
        assert_eq!(timed.backend(), memory.backend());
        let told = told.lock().map(|t| t.clone()).unwrap_or_default();
        assert_eq!(told, vec![("register", true), ("manual", true)]);
    }
}
