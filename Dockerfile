# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run on debian-slim as a non-root user.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
RUN cargo build --release --locked --bin offboard

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates=20230311+deb12u1 curl=7.88.1-10+deb12u14 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin offboard \
 && mkdir -p /data /etc/offboard \
 && chown offboard /data
COPY --from=build /src/target/release/offboard /usr/local/bin/offboard
COPY config/offboard.toml config/policy.toml /etc/offboard/
WORKDIR /data
USER offboard
VOLUME ["/data"]
ENV OFFBOARD__STORE__URL=sqlite:///data/offboard.db \
    OFFBOARD__POLICY__FILE=/etc/offboard/policy.toml \
    OFFBOARD__SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["curl", "-fsS", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["offboard"]
CMD ["serve", "--config", "/etc/offboard/offboard.toml"]
