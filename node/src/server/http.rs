//! The HTTP endpoints for Kubernetes and Prometheus: `/healthz` (the process is up),
//! `/readyz` (a member of the configuration and caught up), `/metrics`, and `/prestop`
//! (a leader hands leadership off before its pod stops).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::admin_service::hand_off_leadership;
use super::shared::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/prestop", get(prestop).post(prestop))
        .with_state(shared)
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match shared.view().ready(shared.node_id) {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
}

async fn prestop(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match hand_off_leadership(&shared).await {
        Some(leader) => format!("leadership handed to node {leader}\n"),
        None => "not leading; nothing to hand off\n".to_owned(),
    }
}
