# syntax=docker/dockerfile:1
#
# Build:  docker build -t wa-groups-gateway .
# Run:    docker run --rm -p 8080:8080 -v wagw-data:/app/data wa-groups-gateway
#
# Without configuration the container runs the sandbox (Meta simulated in process); as it
# listens on 0.0.0.0, the public development key and secrets are replaced at start by random
# ones and a demo token is printed (see `docker logs`). For production, mount
# config/production.toml (see config/production.example.toml) or point WAGW_CONFIG at a
# mounted file, and pass secrets as environment variables.

ARG RUST_IMAGE=rust:1.95-slim-bookworm

# ---- build --------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and compiled dependencies between builds; the
# binary is copied out of the cached target directory before the mount goes away.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && cp target/release/wa-groups-gateway /usr/local/bin/wa-groups-gateway \
    && strip /usr/local/bin/wa-groups-gateway

# ---- runtime ------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /app --shell /usr/sbin/nologin gateway

WORKDIR /app
COPY --from=builder /usr/local/bin/wa-groups-gateway /usr/local/bin/wa-groups-gateway
COPY config/ /app/config/
# SQLite lives in /app/data (storage.url = "sqlite://data/gateway.db", relative to /app).
RUN mkdir -p /app/data && chown gateway:gateway /app/data
VOLUME ["/app/data"]

ENV APP_ENVIRONMENT=production \
    WAGW__SERVER__HOST=0.0.0.0

USER gateway:gateway
EXPOSE 8080

# No curl in the image: bash's /dev/tcp asks /healthz directly. It follows WAGW__SERVER__PORT;
# a port changed in a configuration file needs the same value in that variable.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${WAGW__SERVER__PORT:-8080} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && grep -q '200 OK' <&3"]

ENTRYPOINT ["/usr/local/bin/wa-groups-gateway"]
CMD ["serve"]
