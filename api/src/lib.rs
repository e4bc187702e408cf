//! The REST API of audithound.
//!
//! For now: health and metrics of the sidecar (`/healthz`, `/metrics` in the Prometheus text
//! format). The SIEM findings API, forensic query, rules and techniques endpoints, the audit
//! webhook receiver and authentication come with their issue; the router is built by a function
//! that takes state, so tests drive it without a socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

/// Counters of the sidecar's pipeline, updated by the pipeline and read by `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events decoded.
    pub events: AtomicU64,
    /// Records that could not be decoded (dead letters).
    pub malformed: AtomicU64,
    /// Findings opened or updated.
    pub findings: AtomicU64,
    /// Batches processed end to end (rules, stores, checkpoint).
    pub batches: AtomicU64,
    /// Bytes of logs processed.
    pub bytes: AtomicU64,
    /// Rule evaluations that failed.
    pub rule_errors: AtomicU64,
    /// Memory of judged batches waiting to be written to the capture store: grows while the
    /// disk stalls, and reading slows down when it reaches its bound.
    pub persist_backlog_bytes: AtomicU64,
    /// Whether the pipeline has started and not stopped.
    pub running: AtomicBool,
}

impl Metrics {
    /// The counters in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let c = |name: &str, help: &str, v: &AtomicU64| {
            format!(
                "# HELP audithound_{name} {help}\n# TYPE audithound_{name} counter\naudithound_{name} {}\n",
                v.load(Ordering::Relaxed)
            )
        };
        [
            c("events_total", "Events decoded.", &self.events),
            c(
                "malformed_total",
                "Records that could not be decoded.",
                &self.malformed,
            ),
            c(
                "findings_total",
                "Findings opened or updated.",
                &self.findings,
            ),
            c(
                "batches_total",
                "Batches processed end to end.",
                &self.batches,
            ),
            c("bytes_total", "Bytes of logs processed.", &self.bytes),
            c(
                "rule_errors_total",
                "Rule evaluations that failed.",
                &self.rule_errors,
            ),
            format!(
                "# HELP audithound_persist_backlog_bytes Judged batches waiting for the capture store.\n# TYPE audithound_persist_backlog_bytes gauge\naudithound_persist_backlog_bytes {}\n",
                self.persist_backlog_bytes.load(Ordering::Relaxed)
            ),
        ]
        .concat()
    }
}

/// The API's router.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics_handler))
        .with_state(metrics)
}

/// Serves the router on a bound listener until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics)).await
}

async fn health(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.running.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting or stopping\n")
    }
}

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], m.render())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn health_reflects_the_pipeline_and_metrics_render_counters() {
        let m = Arc::new(Metrics::default());
        let app = router(Arc::clone(&m));
        let res = app
            .clone()
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        m.running.store(true, Ordering::Relaxed);
        m.events.fetch_add(42, Ordering::Relaxed);
        m.persist_backlog_bytes.store(4096, Ordering::Relaxed);
        let res = app
            .clone()
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = app
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("audithound_events_total 42"));
        assert!(text.contains("# TYPE audithound_persist_backlog_bytes gauge"));
        assert!(text.contains("audithound_persist_backlog_bytes 4096"));
    }
}
