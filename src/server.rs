//! The listeners and the workers, built by walking the list of areas `app.rs` hands in: each
//! area's gRPC services, HTTP routes and background workers. Each area's own code stays in its folder.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use futures::StreamExt;
use prost::Message;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    Code, Status,
    codegen::http,
    transport::{Server, server::TcpIncoming},
};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::{
    ops::{
        ApiError,
        conn::{LimitedListener, Slots, limited_incoming},
        error::code_name,
        metrics::{CallTimer, GrpcMethod, Snapshot},
        reflection::Reflection,
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
    let reflection = reflection(&names);
    routes.add_service(health).add_service(reflection.v1()).add_service(reflection.v1alpha());
    let known = Arc::new(known_methods(&names));
    let tls = state.tls.clone();
    let calls = Arc::new(tokio::sync::Semaphore::new(state.limits.max_concurrent_calls.max(1)));
    let slots = Slots::new("grpc", state.limits.grpc_connections);
    let server = Server::builder()
        // Dead peers are found by HTTP/2 pings, and one connection cannot open streams without bound.
        .http2_keepalive_interval(Some(GRPC_KEEPALIVE_EVERY))
        .http2_keepalive_timeout(Some(GRPC_KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(GRPC_MAX_STREAMS_PER_CONNECTION))
        .layer(MetricsLayer { state, known, calls })
        .add_routes(routes.routes());
    match tls {
        Some(tls) => {
            let incoming = ReceiverStream::new(tls.incoming(listener, Listener::Grpc)).map(Ok::<_, std::io::Error>);
            server.serve_with_incoming_shutdown(limited_incoming(incoming, slots), stop).await
        }
        // TCP_NODELAY on every accepted connection: without it small answers wait ~40 ms for the
        // peer's delayed ACK (Nagle); `Server::tcp_nodelay` only applies to listeners tonic binds.
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            server.serve_with_incoming_shutdown(limited_incoming(incoming, slots), stop).await
        }
    }
}

/// HTTP/2 keepalive of gRPC connections: a ping after this much silence, and the connection
/// closed if the peer does not answer within the timeout.
const GRPC_KEEPALIVE_EVERY: Duration = Duration::from_secs(30);
const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams one gRPC connection may have open at once (the server's call limit bounds them all).
const GRPC_MAX_STREAMS_PER_CONNECTION: u32 = 256;

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

/// Reflection of the served services only (not every service the proto files declare), with
/// every file they need: grpcurl asks for the health service's descriptor before calling it, and
/// for google.rpc's ErrorInfo, BadRequest and RetryInfo to print error details.
fn reflection(served: &[&'static str]) -> Reflection {
    let services: Vec<&str> = served.iter().copied().chain(BUILT_IN_SERVICES).collect();
    Reflection::new(
        &[
            proto::FILE_DESCRIPTOR_SET,
            proto::GOOGLE_RPC_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ],
        &services,
    )
}

/// The services every server answers besides the areas' own.
const BUILT_IN_SERVICES: [&str; 3] =
    ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

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
    let (slots, idle) = (Slots::new("http", state.limits.http_connections), Some(state.limits.http_idle));
    match &state.tls {
        Some(tls) => {
            let listener = LimitedListener::new(HttpsListener::new(tls, listener)?, slots, idle);
            axum::serve(listener, router).with_graceful_shutdown(stop).await
        }
        None => axum::serve(LimitedListener::new(listener, slots, idle), router).with_graceful_shutdown(stop).await,
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
        .with_state(state.clone());
    let listener =
        LimitedListener::new(listener, Slots::new("ops", state.limits.ops_connections), Some(state.limits.http_idle));
    axum::serve(listener, router).with_graceful_shutdown(stop).await
}

/// Background work that must survive a call: the platform's own housekeeping, then every area's
/// workers (status follow-up, order sweeps, ...).
pub fn spawn_workers(state: &AppState, areas: &[&AreaSpec]) -> Vec<JoinHandle<()>> {
    let backlog = state.audit_backlog.clone();
    let mut workers = vec![
        periodic::spawn(state, "expired idempotency keys", periodic::HOURLY, |db| async move {
            crate::store::idempotency::purge_expired(&db).await
        }),
        // Audit rows an outage held back, written once the database is back.
        periodic::spawn(state, "audit rows held back", Duration::from_secs(1), move |db| {
            let backlog = backlog.clone();
            async move { if backlog.is_empty() { Ok(0) } else { backlog.flush(&db).await } }
        }),
    ];
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
    let idle = state.db.num_idle() as u64;
    let now = Snapshot {
        tenants: state.registry.tenant_count() as u64,
        reloads: state.registry.reloads(),
        reload_failures: state.registry.reload_failures(),
        db_in_use: u64::from(state.db.size()).saturating_sub(idle),
        db_idle: idle,
    };
    let served = state.registry.tenants().iter().map(|t| t.id.clone()).collect();
    state.metrics.forget_tenants_except(&served);
    let body = state.metrics.render(now);
    // prometheus-client writes the OpenMetrics text format (Prometheus scrapes it natively).
    ([(http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
}

/// The methods this server answers, by full name (`patchbay.v1.AccountService/CreateAccount`),
/// with their metric labels, from the served services' descriptors, health and reflection
/// included. Metrics and logs name a call by these only: any other path a caller sends is
/// `unknown`, so no request can add a series (or an unparseable label) to /metrics, or write its
/// own text into a log line.
fn known_methods(served: &[&'static str]) -> HashMap<String, GrpcMethod> {
    let mut sets = vec![
        prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set is valid"),
        prost_types::FileDescriptorSet::decode(tonic_health::pb::FILE_DESCRIPTOR_SET).expect("health's descriptor set"),
    ];
    sets.extend(
        [tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET, tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET]
            .map(|set| prost_types::FileDescriptorSet::decode(set).expect("reflection's descriptor set")),
    );
    let served: HashSet<&str> = served.iter().copied().chain(BUILT_IN_SERVICES).collect();
    let mut known = HashMap::new();
    for file in sets.iter().flat_map(|set| &set.file) {
        for service in &file.service {
            let full = format!("{}.{}", file.package(), service.name());
            if !served.contains(full.as_str()) {
                continue;
            }
            for m in &service.method {
                let grpc_type = match (m.client_streaming(), m.server_streaming()) {
                    (false, false) => "unary",
                    (true, false) => "client_stream",
                    (false, true) => "server_stream",
                    (true, true) => "bidi_stream",
                };
                known.insert(format!("{full}/{}", m.name()), GrpcMethod::new(&full, m.name(), grpc_type));
            }
        }
    }
    known
}

/// A `grpc-timeout` header's duration (`100m`, `5S`, `1H`: up to 8 digits and a unit).
fn grpc_timeout(value: &http::HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// When to answer DEADLINE_EXCEEDED for a caller's deadline: a little before it, so that the
/// answer, with its ErrorInfo, reaches the caller before its own timer gives up, and always
/// before tonic's timer on the same header (started a moment earlier, it would answer CANCELLED
/// "Timeout expired"): 5% of the deadline, at least 2 ms and at most 50 ms.
fn answer_before(deadline: Duration) -> Duration {
    let margin = (deadline / 20).clamp(Duration::from_millis(2), Duration::from_millis(50)).min(deadline / 2);
    deadline - margin
}

/// A request path's method and labels if the server answers it, else `unknown`.
fn method_label<'a>(known: &'a HashMap<String, GrpcMethod>, path: &str) -> (&'a str, GrpcMethod) {
    known
        .get_key_value(path.trim_start_matches('/'))
        .map_or(("unknown", GrpcMethod::UNKNOWN), |(k, v)| (k.as_str(), *v))
}

/// The gRPC edge: names every call's method for its handler, sheds load beyond the server's
/// concurrency limit (RESOURCE_EXHAUSTED with RetryInfo, at once), enforces the caller's deadline
/// (or the default one of a unary call that brings none) as DEADLINE_EXCEEDED, counts every call
/// by its final code, and logs it.
#[derive(Clone)]
struct MetricsLayer {
    state: AppState,
    known: Arc<HashMap<String, GrpcMethod>>,
    calls: Arc<tokio::sync::Semaphore>,
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            state: self.state.clone(),
            known: Arc::clone(&self.known),
            calls: Arc::clone(&self.calls),
        }
    }
}

#[derive(Clone)]
struct MetricsService<S> {
    inner: S,
    state: AppState,
    known: Arc<HashMap<String, GrpcMethod>>,
    calls: Arc<tokio::sync::Semaphore>,
}

impl<S, B, RB> Service<http::Request<B>> for MetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = http::Response<CountedBody<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let (method, labels) = method_label(&self.known, req.uri().path());
        let method = method.to_owned();
        if self.state.limits.bare {
            // Measurement only (`Limits::bare`): the handlers' one need, and nothing else.
            req.extensions_mut().insert(RpcMethod(method));
            let fut = self.inner.call(req);
            return Box::pin(async move { fut.await.map(|resp| resp.map(CountedBody::counted)) });
        }
        // Handlers read it back (tonic sets `GrpcMethod` on the client side only).
        req.extensions_mut().insert(RpcMethod(method.clone()));
        // Dropped unfinished (the client went away), it counts CANCELLED.
        let timer = self.state.metrics.grpc_started(labels);
        let Ok(permit) = Arc::clone(&self.calls).try_acquire_owned() else {
            let status = Status::from(
                ApiError::new(
                    Code::ResourceExhausted,
                    "SERVER_OVERLOADED",
                    "the server is at its limit of concurrent calls; retry after the delay in RetryInfo",
                )
                .with_retry_after(Duration::from_secs(1)),
            );
            timer.finish("RESOURCE_EXHAUSTED");
            tracing::warn!(%method, "call shed: the server is at its concurrency limit");
            return Box::pin(std::future::ready(Ok(status.into_http::<RB>().map(CountedBody::counted))));
        };
        // The deadline is enforced here, as DEADLINE_EXCEEDED with ErrorInfo, rather than by
        // tonic (which would answer CANCELLED "Timeout expired"): its header goes.
        let asked = req.headers_mut().remove("grpc-timeout").and_then(|v| grpc_timeout(&v));
        let deadline =
            asked.map(answer_before).or((labels.grpc_type == "unary").then_some(self.state.limits.default_deadline));
        // Every log line of the call (and of its vendor calls, see `ops::vendor`) names the method,
        // and the caller's W3C trace id when it sends one, so that its logs and ours join up.
        let trace_id = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).and_then(trace_id_of);
        // `tenant` and `request_id` are recorded by the edge once known (platform/call.rs),
        // `code` at the call's end; `otel.*` name the exported span (ops/telemetry.rs).
        let span = tracing::info_span!(
            "grpc",
            method = %method,
            trace_id = tracing::field::Empty,
            tenant = tracing::field::Empty,
            request_id = tracing::field::Empty,
            code = tracing::field::Empty,
            otel.name = %method,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
        );
        if let Some(id) = &trace_id {
            span.record("trace_id", id.as_str());
            crate::ops::telemetry::continue_trace(&span, req.headers());
        }
        let fut = self.inner.call(req).instrument(span.clone());
        Box::pin(async move {
            let _permit = permit;
            let result = match deadline {
                None => fut.await,
                Some(deadline) => match tokio::time::timeout(deadline, fut).await {
                    Ok(result) => result,
                    Err(_) => Ok(Status::from(ApiError::new(
                        Code::DeadlineExceeded,
                        "DEADLINE_EXCEEDED",
                        format!(
                            "the call's deadline ({} ms) passed before it finished; a change it started may still \
                             complete: a retry with the same request_id gets its answer",
                            deadline.as_millis()
                        ),
                    ))
                    .into_http()),
                },
            };
            let mut result = result;
            if let Ok(resp) = &mut result
                && let Some(why) = malformed_request(resp.headers())
            {
                *resp = Status::from(ApiError::new(
                    Code::InvalidArgument,
                    "MALFORMED_REQUEST",
                    format!("the request is not a valid protobuf message of this method: {why}"),
                ))
                .into_http();
            }
            // Errors are trailers-only responses, with grpc-status in the headers: counted now.
            // Any other answer sends its status in the trailers, after the body (a stream's, once
            // it ends): counted then, by its body.
            let end = CallEnd { timer, method, trace_id, span };
            result.map(|resp| match grpc_code(resp.headers()) {
                Some(code) => {
                    end.finish(code);
                    resp.map(CountedBody::counted)
                }
                None => resp.map(|inner| CountedBody { inner, end: Some(end) }),
            })
        })
    }
}

/// The code name of a `grpc-status` header or trailer, if there is one.
fn grpc_code(headers: &http::HeaderMap) -> Option<&'static str> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(code_name(tonic::Code::from_i32(code)))
}

/// A call not yet counted: its timer, its method and trace id for the log line, and its span
/// (which ends, for the exported trace, when this does).
struct CallEnd {
    timer: CallTimer,
    method: String,
    trace_id: Option<String>,
    span: tracing::Span,
}

/// The codes that make a server span an error, as OpenTelemetry's gRPC conventions list them:
/// the server's failures, not the caller's (a NOT_FOUND is a correct answer).
const SERVER_ERRORS: [&str; 6] =
    ["UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"];

impl CallEnd {
    fn finish(self, code: &'static str) {
        self.span.record("code", code);
        if SERVER_ERRORS.contains(&code) {
            self.span.record("otel.status_code", "ERROR");
        }
        let elapsed = self.timer.finish(code);
        let elapsed_ms = elapsed.as_millis() as u64;
        match &self.trace_id {
            Some(trace_id) => tracing::debug!(method = %self.method, code, elapsed_ms, trace_id, "gRPC call"),
            None => tracing::debug!(method = %self.method, code, elapsed_ms, "gRPC call"),
        }
    }
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), if it is one: anything
/// else a caller sends is ignored, so no caller's text reaches a log line.
fn trace_id_of(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace_id, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    valid.then(|| trace_id.to_owned())
}

/// A response body that counts its call when it ends: at the trailers a gRPC answer ends with
/// (their grpc-status is the call's code, so a stream that fails half-way counts as it failed,
/// not OK at its headers), or CANCELLED when it is dropped before them (the client went away; the
/// timer's own drop counts that).
pub struct CountedBody<B> {
    inner: B,
    end: Option<CallEnd>,
}

impl<B> CountedBody<B> {
    /// A body whose call is counted already.
    fn counted(inner: B) -> Self {
        Self { inner, end: None }
    }
}

impl<B> http_body::Body for CountedBody<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(frame) = &polled {
            let code = match frame {
                Some(Ok(frame)) => frame.trailers_ref().map(|t| grpc_code(t).unwrap_or("UNKNOWN")),
                // The answer broke off (its connection failed) before its status was sent.
                Some(Err(_)) => Some("UNKNOWN"),
                None => Some("UNKNOWN"),
            };
            if let Some(code) = code
                && let Some(end) = self.end.take()
            {
                end.finish(code);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// What tonic's decoder found wrong with a request (invalid UTF-8 in a string, a truncated or
/// garbage message), from the INTERNAL status it answers for it: the caller's request is at
/// fault, so patchbay answers INVALID_ARGUMENT instead.
fn malformed_request(headers: &http::HeaderMap) -> Option<String> {
    let status = Status::from_header_map(headers)?;
    let why = status.message().strip_prefix("failed to decode Protobuf message")?;
    (status.code() == Code::Internal).then(|| why.trim_start_matches([':', ' ']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_traceparent_gives_a_trace_id() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(trace_id_of(&format!("00-{id}-00f067aa0ba902b7-01")).as_deref(), Some(id));
        for bad in [
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{id}-0000000000000000-01"),
            format!("ff-{id}-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", id.to_uppercase()),
            format!("00-{id}-00f067aa0ba902b7-01-extra"),
            format!("00-{id}\n-00f067aa0ba902b7-01"),
            "garbage".to_owned(),
        ] {
            assert_eq!(trace_id_of(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_callers_deadline_is_answered_a_little_before_it_passes() {
        let ms = Duration::from_millis;
        assert_eq!(answer_before(ms(300)), ms(285));
        assert_eq!(answer_before(Duration::from_secs(30)), Duration::from_secs(30) - ms(50));
        assert_eq!(answer_before(ms(20)), ms(18), "at least 2 ms early");
        assert_eq!(answer_before(ms(2)), ms(1), "never more than half of it");
        assert_eq!(answer_before(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn only_served_methods_are_labels_and_every_other_path_is_unknown() {
        let known = known_methods(&["patchbay.v1.AccountService"]);
        assert_eq!(
            method_label(&known, "/patchbay.v1.AccountService/GetAccountStatus").0,
            "patchbay.v1.AccountService/GetAccountStatus"
        );
        assert_eq!(method_label(&known, "/grpc.health.v1.Health/Check").0, "grpc.health.v1.Health/Check");
        let (_, labels) = method_label(&known, "/patchbay.v1.AccountService/GetAccountStatus");
        assert_eq!(
            (labels.grpc_service, labels.grpc_method, labels.grpc_type),
            ("patchbay.v1.AccountService", "GetAccountStatus", "unary")
        );
        let (_, watch) = method_label(&known, "/grpc.health.v1.Health/Watch");
        assert_eq!(watch.grpc_type, "server_stream");
        for path in ["/patchbay.v1.DialerService/CreateAgent", "/bad\"name/x", "/random-7/x", "/", ""] {
            assert_eq!(method_label(&known, path), ("unknown", GrpcMethod::UNKNOWN), "{path}");
        }
    }
}
