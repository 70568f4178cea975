# syntax=docker/dockerfile:1
# The vellum binary in a small image: the admin UI built with Node, the server with Rust
# (the example plugins built for wasm32-wasip2 by build.rs and bundled), run as a non-root
# user on /data. docker-compose.yml runs three of these behind nginx; docs/cluster.md.
#
#   docker build -t vellum .
#   docker run -p 8080:8080 -e JWT_SECRET=... -v vellum-data:/data vellum

# --- the admin UI (admin-ui/ -> admin-ui/dist, which build.rs embeds) ------------------
FROM node:20-bookworm-slim AS ui
WORKDIR /src/admin-ui
COPY admin-ui/package.json admin-ui/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY admin-ui/ ./
RUN npm run build

# --- the server ------------------------------------------------------------------------
# The same Rust as rust-toolchain.toml (which `rustup toolchain install` reads, with its
# components and the wasm32-wasip2 target).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY rust-toolchain.toml ./
RUN rustup toolchain install && rustup target add wasm32-wasip2
COPY . .
# build.rs runs npm only when admin-ui/dist is missing, a placeholder, or older than the UI
# sources. The dist built above is put in place, and VELLUM_SKIP_UI_BUILD=1 makes sure npm
# (which this image does not have) is never tried: with a real dist present, build.rs
# embeds it as it is.
COPY --from=ui /src/admin-ui/dist admin-ui/dist
ENV VELLUM_SKIP_UI_BUILD=1
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin vellum \
    && cp target/release/vellum /usr/local/bin/vellum

# --- the runtime -----------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin vellum \
    && mkdir -p /data && chown vellum:vellum /data
COPY --from=build /usr/local/bin/vellum /usr/local/bin/vellum
USER vellum
# The node's own state: the search index, compiled plugins, installed plugins (and, with
# the embedded SQLite store instead of PostgreSQL, the database and the JWT secret).
VOLUME /data
EXPOSE 8080
# /readyz: 200 when the node serves (also "degraded" while Redis is down: its own clients
# still work), 503 without the database. bash's /dev/tcp keeps curl out of the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["vellum", "serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/data"]
