//! What every reconcile shares: the kube client, the Admin API, the Event recorder, metrics,
//! timing settings, the clock (injected so status timestamps are reproducible in tests) and
//! the per-cluster failure counts behind the error backoff.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::metrics::Metrics;

/// `metadata.managedFields` manager of every object and status the operator writes, and
/// the Events' reporting controller.
pub const FIELD_MANAGER: &str = "kuberaft-operator";

/// Current time as status wants it.
pub type Clock = Arc<dyn Fn() -> Time + Send + Sync>;

/// Requeue and backoff intervals.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Next look while an operation is in flight or a step was just applied: Admin status
    /// is polled, not watched, so progress such as a learner catching up is only seen then.
    pub requeue_busy: Duration,
    /// Next look while blocked: the cause (an unhealthy member) may clear on its own.
    pub requeue_blocked: Duration,
    /// Next look when the cluster matches its spec.
    pub requeue_idle: Duration,
    /// First retry after a failed reconcile; doubles per consecutive failure.
    pub backoff_min: Duration,
    /// Longest wait between retries.
    pub backoff_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            requeue_busy: Duration::from_secs(5),
            requeue_blocked: Duration::from_secs(30),
            requeue_idle: Duration::from_secs(300),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// Shared by every reconcile of every RaftCluster.
pub struct Context<A> {
    pub client: Client,
    pub admin: A,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    clock: Clock,
    /// Consecutive failures per `namespace/name`, reset by a successful reconcile.
    failures: Mutex<HashMap<String, u32>>,
}

impl<A> fmt::Debug for Context<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<A> Context<A> {
    /// A context with the real clock, default settings and fresh metrics. `instance`
    /// names this operator replica in Events (the pod name).
    pub fn new(client: Client, admin: A, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            admin,
            metrics: Arc::new(Metrics::default()),
            settings: Settings::default(),
            clock: Arc::new(|| Time(k8s_openapi::jiff::Timestamp::now())),
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    pub fn now(&self) -> Time {
        (self.clock)()
    }

    /// Counts a failure of `key` and returns how long to wait before retrying:
    /// `backoff_min * 2^(failures-1)`, capped at `backoff_max`.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 1u32
            .checked_shl(n.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        self.settings
            .backoff_min
            .saturating_mul(factor)
            .min(self.settings.backoff_max)
    }

    /// A successful reconcile of `key`: the next failure starts the backoff over.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}
