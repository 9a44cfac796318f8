# syntax=docker/dockerfile:1
# offboard's image: compiled in the Rust image; the runtime stage is FROM scratch
# with the binary, the glibc libraries it links, /etc/passwd and the example config:
# no shell, no package manager, no curl (the HEALTHCHECK is `offboard healthcheck`).
#
#   docker build -t offboard .
#   docker run --read-only -p 8080:8080 -v offboard-data:/data \
#     -e SELL_ACCESS_TOKEN -e HR_WEBHOOK_SECRETS -e OFFBOARD_ADMIN_TOKEN offboard
#
# Without a builder image (CI, tests/container_image.rs): build the binary on a
# Debian 12 host and hand it in as the `build` stage, which is then skipped:
#   buildah bud --build-context build=DIR …   (DIR/usr/local/bin/offboard)
#
# Config: /etc/offboard/offboard.toml and policy.toml (the repository's examples;
# mount your own over them). Any key can be overridden with OFFBOARD__SECTION__KEY.
# Secrets come from the environment variables the config names, never the image.
# It runs as 10001 and writes only to /data (the SQLite store, SQLite's temp files),
# so the root filesystem can be mounted read-only.
# tests/container.rs reads the final stage's ENV, WORKDIR, ENTRYPOINT and CMD, so
# keep them parseable: JSON arrays, one KEY=value per ENV word.

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

# The runtime's files, gathered on the Debian release the binary was linked
# against (the same as the builder's), so the glibc copied matches it.
FROM debian:bookworm-slim AS rootfs
COPY --from=build /usr/local/bin/offboard /rootfs/usr/local/bin/offboard
# Shared libraries: what ldd resolves (libc, libm, libgcc_s, the loader), copied to
# the same paths, symlinks followed; a binary that does not link is a failed build
# here rather than a container that cannot start. /data: owned by 10001 so a new
# named volume starts out writable by it.
RUN set -eu \
 && ldd /rootfs/usr/local/bin/offboard \
 && for lib in $(ldd /rootfs/usr/local/bin/offboard | awk '$2 == "=>" { print $3 } $1 ~ /^\// { print $1 }'); do \
      cp --parents -L "$lib" /rootfs; \
    done \
 && mkdir -p /rootfs/etc/offboard /rootfs/data \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\noffboard:x:10001:10001:offboard:/data:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\noffboard:x:10001:\n' > /rootfs/etc/group \
 && chown 10001:10001 /rootfs/data \
 && chmod 0755 /rootfs/data

FROM scratch
COPY --from=rootfs /rootfs/ /
COPY --from=rootfs --chown=10001:10001 /rootfs/data /data
COPY config/offboard.toml config/policy.toml /etc/offboard/
WORKDIR /data
USER 10001:10001
VOLUME ["/data"]
# TMPDIR: SQLite's and anything else's temporary files go to the volume, the one
# writable place. PATH: scratch has none, and ENTRYPOINT and HEALTHCHECK name the
# binary without a directory.
ENV OFFBOARD__STORE__URL=sqlite:///data/offboard.db \
    OFFBOARD__POLICY__FILE=/etc/offboard/policy.toml \
    OFFBOARD__SERVER__LISTEN=0.0.0.0:8080 \
    TMPDIR=/data \
    PATH=/usr/local/bin
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["offboard", "--config", "/etc/offboard/offboard.toml", "healthcheck"]
ENTRYPOINT ["offboard"]
CMD ["serve", "--config", "/etc/offboard/offboard.toml", "--log-format", "json"]
