# syntax=docker/dockerfile:1
# offboard's image: compiled in the Rust image, run on debian-slim as a non-root user.
#
#   docker build -t offboard .
#   docker run -p 8080:8080 -v offboard-data:/data \
#     -e SELL_ACCESS_TOKEN -e HR_WEBHOOK_SECRETS -e OFFBOARD_ADMIN_TOKEN offboard
#
# Config: /etc/offboard/offboard.toml and policy.toml (the repository's examples;
# mount your own over them). Any key can be overridden with OFFBOARD__SECTION__KEY.
# Secrets come from the environment variables the config names, never the image.
# tests/container.rs runs the binary with exactly the ENV, WORKDIR, ENTRYPOINT and
# CMD below, so keep them parseable: JSON arrays, one KEY=value per ENV word.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
COPY migrations ./migrations
COPY config ./config
# The cache mounts keep the registry and incremental build between image builds;
# the binary is copied out of the cached target/ so the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin offboard \
 && cp target/release/offboard /usr/local/bin/offboard

FROM debian:bookworm-slim
# ca-certificates: system roots for anything TLS outside the built-in webpki roots;
# curl: the HEALTHCHECK. Unpinned on purpose: Debian replaces point releases in the
# archive (an exact pin breaks the build as soon as a security update lands); the
# base image tag is what fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 offboard \
 && useradd --system --uid 10001 --gid offboard --home-dir /data --shell /usr/sbin/nologin offboard \
 && mkdir -p /data /etc/offboard \
 && chown offboard:offboard /data
COPY --from=build /usr/local/bin/offboard /usr/local/bin/offboard
COPY config/offboard.toml config/policy.toml /etc/offboard/
WORKDIR /data
USER 10001:10001
VOLUME ["/data"]
ENV OFFBOARD__STORE__URL=sqlite:///data/offboard.db \
    OFFBOARD__POLICY__FILE=/etc/offboard/policy.toml \
    OFFBOARD__SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["curl", "-fsS", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["offboard"]
CMD ["serve", "--config", "/etc/offboard/offboard.toml", "--log-format", "json"]
