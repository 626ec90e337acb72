//! The listeners and the workers, built by walking the list of areas `app.rs` hands in: each
//! area's gRPC services, HTTP routes and background workers. Each area's own code stays in its folder.

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use futures::StreamExt;
use prost::Message;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    codegen::http,
    transport::{Server, server::TcpIncoming},
};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::{
    ops::{
        error::code_name,
        tls::{HttpsListener, Listener},
    },
    platform::{AppState, AreaSpec, GrpcServices, call::RpcMethod, periodic},
    proto,
};

/// Serves gRPC on `listener` until `stop`: every area's services, health and reflection (v1 and
/// v1alpha, so that grpcurl 1.8 works), each call counted in the metrics.
pub async fn serve_grpc(
    state: AppState,
    areas: &[&AreaSpec],
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    let mut services = GrpcServices::default();
    for area in areas {
        (area.grpc)(&state, &mut services);
    }
    let (mut routes, names) = services.into_parts();
    for name in &names {
        health_reporter.set_service_status(*name, tonic_health::ServingStatus::Serving).await;
    }
    tokio::spawn(follow_the_database(state.db.clone(), health_reporter, names.clone(), state.shutdown.clone()));
    routes
        .add_service(health)
        .add_service(reflection(&names).build_v1().expect("the embedded descriptor sets are valid"))
        .add_service(reflection(&names).build_v1alpha().expect("the embedded descriptor sets are valid"));
    let known = Arc::new(known_methods(&names));
    let tls = state.tls.clone();
    let server = Server::builder().layer(MetricsLayer { state, known }).add_routes(routes.routes());
    match tls {
        Some(tls) => {
            let incoming = ReceiverStream::new(tls.incoming(listener, Listener::Grpc)).map(Ok::<_, std::io::Error>);
            server.serve_with_incoming_shutdown(incoming, stop).await
        }
        // TCP_NODELAY on every accepted connection: without it small answers wait ~40 ms for the
        // peer's delayed ACK (Nagle); `Server::tcp_nodelay` only applies to listeners tonic binds.
        None => server.serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), stop).await,
    }
}

/// How often gRPC health asks the database, and how long it waits for an answer: together they
/// bound how late health reports an outage (1.5 s).
const HEALTH_PROBE_EVERY: Duration = Duration::from_millis(500);
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// gRPC health tells the truth about the database every service needs: NOT_SERVING (every
/// service, and the server as a whole) soon after it becomes unreachable, SERVING once it answers
/// again, without a restart.
async fn follow_the_database(
    db: sqlx::PgPool,
    reporter: tonic_health::server::HealthReporter,
    names: Vec<&'static str>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut serving = true;
    let mut tick = tokio::time::interval(HEALTH_PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let probe = sqlx::query("SELECT 1").execute(&db);
        let up = matches!(tokio::time::timeout(HEALTH_PROBE_TIMEOUT, probe).await, Ok(Ok(_)));
        if up == serving {
            continue;
        }
        serving = up;
        let status = if up { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
        if up {
            tracing::info!("the database answers again: gRPC health SERVING");
        } else {
            tracing::error!("the database is unreachable: gRPC health NOT_SERVING");
        }
        reporter.set_service_status("", status).await;
        for name in &names {
            reporter.set_service_status(*name, status).await;
        }
    }
}

/// Reflection for the served services only, not every service the proto files declare.
fn reflection<'a>(served: &[&'static str]) -> tonic_reflection::server::Builder<'a> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        // grpcurl asks reflection for the health service's descriptor before calling it.
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // And for google.rpc.ErrorInfo, BadRequest and RetryInfo, so that it prints error details.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection");
    for name in served {
        builder = builder.with_service_name(*name);
    }
    builder
}

/// Serves the public HTTP listener: every area's routes (vendor callbacks), nothing else.
pub async fn serve_http(
    state: AppState,
    areas: &[&AreaSpec],
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut router = Router::new();
    for area in areas {
        router = router.merge((area.routes)(&state));
    }
    match &state.tls {
        Some(tls) => axum::serve(HttpsListener::new(tls, listener)?, router).with_graceful_shutdown(stop).await,
        None => axum::serve(listener, router).with_graceful_shutdown(stop).await,
    }
}

/// Serves the operations listener: `/healthz` (the process is up), `/readyz` (it can serve: the
/// database answers) and `/metrics`.
pub async fn serve_ops(
    state: AppState,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    axum::serve(listener, router).with_graceful_shutdown(stop).await
}

/// Background work that must survive a call: the platform's own housekeeping, then every area's
/// workers (status follow-up, order sweeps, ...).
pub fn spawn_workers(state: &AppState, areas: &[&AreaSpec]) -> Vec<JoinHandle<()>> {
    let mut workers = vec![periodic::spawn(state, "expired idempotency keys", periodic::HOURLY, |db| async move {
        crate::store::idempotency::purge_expired(&db).await
    })];
    for area in areas {
        workers.extend((area.workers)(state));
    }
    workers
}

/// Readiness: the database answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.db).await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let tenants = state.registry.tenant_count() as f64;
    let failures = state.registry.reload_failures() as f64;
    let body = state.metrics.render(&[
        ("patchbay_tenants", "Tenants served.", tenants),
        ("patchbay_registry_reload_failures", "Reloads that found a problem in a tenant file, since start.", failures),
    ]);
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// The full names of the methods this server answers (`patchbay.v1.AccountService/CreateAccount`),
/// from the served services' descriptors, health and reflection included. Metrics and logs name
/// a call by these only: any other path a caller sends is `unknown`, so no request can add a
/// series (or an unparseable label) to /metrics, or write its own text into a log line.
fn known_methods(served: &[&'static str]) -> HashSet<String> {
    let mut known: HashSet<String> = [
        "grpc.health.v1.Health/Check",
        "grpc.health.v1.Health/Watch",
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let set = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET)
        .expect("the embedded descriptor set is valid");
    for file in &set.file {
        for service in &file.service {
            let full = format!("{}.{}", file.package(), service.name());
            if served.contains(&full.as_str()) {
                known.extend(service.method.iter().map(|m| format!("{full}/{}", m.name())));
            }
        }
    }
    known
}

/// The label of a request path: its method if the server answers it, else `unknown`.
fn method_label<'a>(known: &'a HashSet<String>, path: &str) -> &'a str {
    known.get(path.trim_start_matches('/')).map_or("unknown", String::as_str)
}

/// Names every gRPC call's method for its handler, counts it by status code, and logs it.
#[derive(Clone)]
struct MetricsLayer {
    state: AppState,
    known: Arc<HashSet<String>>,
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { inner, state: self.state.clone(), known: Arc::clone(&self.known) }
    }
}

#[derive(Clone)]
struct MetricsService<S> {
    inner: S,
    state: AppState,
    known: Arc<HashSet<String>>,
}

impl<S, B, RB> Service<http::Request<B>> for MetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let method = method_label(&self.known, req.uri().path()).to_owned();
        // Handlers read it back (tonic sets `GrpcMethod` on the client side only).
        req.extensions_mut().insert(RpcMethod(method.clone()));
        let started = Instant::now();
        let metrics = self.state.metrics.clone();
        // Every log line of the call (and of its vendor calls, see `ops::vendor`) names the method.
        let span = tracing::info_span!("grpc", method = %method);
        let fut = self.inner.call(req).instrument(span);
        Box::pin(async move {
            let result = fut.await;
            if let Ok(resp) = &result {
                // Errors are trailers-only responses, with grpc-status in the headers; a success
                // sends its status in the trailers, after the body.
                let code = resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or("OK", |c| code_name(tonic::Code::from_i32(c)));
                metrics.grpc_call(&method, code, started.elapsed());
                tracing::debug!(%method, code, elapsed_ms = started.elapsed().as_millis() as u64, "gRPC call");
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_are_labels_and_every_other_path_is_unknown() {
        let known = known_methods(&["patchbay.v1.AccountService"]);
        assert_eq!(
            method_label(&known, "/patchbay.v1.AccountService/GetAccountStatus"),
            "patchbay.v1.AccountService/GetAccountStatus"
        );
        assert_eq!(method_label(&known, "/grpc.health.v1.Health/Check"), "grpc.health.v1.Health/Check");
        for path in ["/patchbay.v1.DialerService/CreateAgent", "/bad\"name/x", "/random-7/x", "/", ""] {
            assert_eq!(method_label(&known, path), "unknown", "{path}");
        }
    }
}
