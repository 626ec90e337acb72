# patchbay's production image: the release binary without the vendor simulators, run as a
# non-root user. The migrations are compiled into the binary (sqlx::migrate!), which applies
# them at start; they are also copied in for an operator's reference.
#
#   docker build -t patchbay .
#   docker run -p 50051:50051 -p 8080:8080 -e DATABASE_URL=postgres://... \
#     -v $PWD/providers.d:/etc/patchbay/providers.d:ro patchbay
#
# .ci/run runs the same cargo build command, so a broken image build fails CI first.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --no-default-features --bin patchbay

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin patchbay
COPY --from=build /src/target/release/patchbay /usr/local/bin/patchbay
COPY migrations /usr/share/patchbay/migrations
# Every listener on all interfaces inside the container; the ops listener (/metrics, /readyz)
# must still not be exposed outside the cluster (see deploy/kubernetes/service.yaml).
ENV PATCHBAY_GRPC_ADDR=0.0.0.0:50051 \
    PATCHBAY_HTTP_ADDR=0.0.0.0:8080 \
    PATCHBAY_OPS_ADDR=0.0.0.0:9090 \
    PATCHBAY_PROVIDERS_DIR=/etc/patchbay/providers.d \
    PATCHBAY_LOG_FORMAT=json
USER 10001:10001
EXPOSE 50051 8080 9090
ENTRYPOINT ["/usr/local/bin/patchbay"]
CMD ["serve"]
