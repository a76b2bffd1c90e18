# syntax=docker/dockerfile:1
#
# The insite image: one binary, `insite`, for every role (migrate, ingest,
# pipeline, query). The live chart page (HTML, JS and the vendored charting
# library) is compiled into the binary (`query/src/web.rs`, `include_str!`),
# so the image carries no asset files.
#
#   docker build -t insite:dev .
#   docker run --rm insite:dev --help

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# The whole workspace: every member's manifest must be present for cargo to
# resolve it, even though only the `insite` binary is built.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p insite \
    && install -D -m 0755 target/release/insite /out/insite

FROM debian:bookworm-slim AS runtime
# CA roots for the TLS connectors (Finnhub WebSocket, RSS, rediss://, https
# ClickHouse); tini reaps and forwards SIGTERM so shutdowns flush in-flight
# work.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 insite \
    && useradd --system --uid 10001 --gid insite --home-dir /var/lib/insite \
       --create-home --shell /usr/sbin/nologin insite
COPY --from=builder /out/insite /usr/local/bin/insite
USER 10001:10001
WORKDIR /var/lib/insite
ENV INSITE_LOG=info
# 8080: query HTTP/WebSocket; 9464: ingest metrics; 9465: pipeline metrics;
# 2101: timely cluster port between pipeline processes.
EXPOSE 8080 9464 9465 2101
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/insite"]
CMD ["--help"]
