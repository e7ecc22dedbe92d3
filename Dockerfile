# The `coditect` image: one binary for the operator (`coditect operator`) and the
# workspace runtime the operator's StatefulSets run (`coditect workspace-runtime`).
#   docker build -t ghcr.io/coditect/coditect:0.1.0 .
# Multi-stage: the build stage has the toolchain; the image has the binary, CA roots,
# git (projects from git URLs) and a non-root user (10001, as the pod specs expect).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin coditect \
    && cp target/release/coditect /coditect

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 coditect \
    && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home coditect \
    && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /coditect /usr/local/bin/coditect
USER 10001:10001
WORKDIR /data
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/coditect"]
CMD ["operator"]
