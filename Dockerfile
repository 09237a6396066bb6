# syntax=docker/dockerfile:1
# Two images from one build, both the one neverust binary. The default (last) target is the
# node's: `start` (the default command) and the lab commands Compose and Kubernetes run
# beside it (`bench`, `health`), built without the visualizer's page and so without npm.
# The `visualizer` target adds the page, which embeds d3 from npm, for `neverust viz`.
# From the repository's root: `docker build -t neverust:local .` and
# `docker build --target visualizer -t neverust-viz:local .` (or, in benchmarks/,
# `docker compose build`, which builds both from the generated compose file).

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
# The release profile keeps some debug info for profiling; the image does not need it.
ENV CARGO_PROFILE_RELEASE_DEBUG=0
RUN cargo build --release --locked -p neverust --no-default-features \
 && cp target/release/neverust /usr/local/bin/neverust

# On top of the node's build, so only the lab crate and the binary are compiled again.
FROM builder AS viz-builder
# Debian's stable versions, not pinned: a pin breaks the build as soon as a security update
# replaces the pinned version.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
# node_modules never come from the build context (.dockerignore): installed here, from the
# lockfile, for this platform.
RUN npm ci --prefix crates/lab/viz-web --no-audit --no-fund \
 && cargo build --release --locked -p neverust \
 && cp target/release/neverust /usr/local/bin/neverust

FROM debian:bookworm-slim AS runtime
# A fixed uid/gid: Kubernetes pods run as 10001 and give their volumes to group 10001.
# /tiers/{nvme,ssd,hdd}: where `--node-tier` puts tiers in Compose. A new named volume takes
# the owner of the image's directory it is mounted on, so these belong to the node's user.
RUN groupadd --system --gid 10001 neverust \
 && useradd --system --uid 10001 --gid neverust --home-dir /data --no-create-home neverust \
 && mkdir -p /data /tiers/nvme /tiers/ssd /tiers/hdd \
 && chown -R neverust:neverust /data /tiers
USER 10001:10001
WORKDIR /data
# In a container the API must be reachable from other containers, not only from inside.
ENV NEVERUST_API_BINDADDR=0.0.0.0 \
    NEVERUST_DATA_DIR=/data
EXPOSE 8080 8070 8090/udp
VOLUME ["/data"]
# `neverust health` asks the node's /health on NEVERUST_API_PORT (8080 by default).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["neverust", "health"]
ENTRYPOINT ["neverust"]
CMD ["start"]

FROM runtime AS visualizer
COPY --from=viz-builder /usr/local/bin/neverust /usr/local/bin/neverust

FROM runtime AS node
COPY --from=builder /usr/local/bin/neverust /usr/local/bin/neverust
