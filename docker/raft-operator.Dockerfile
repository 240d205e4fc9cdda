# syntax=docker/dockerfile:1
# raft-operator, the KubeRaft operator. Build from the repository root:
#   docker build -t ghcr.io/kuberaft/raft-operator:0.1.0 -f docker/raft-operator.Dockerfile .
#
# A static musl binary (rustls, no OpenSSL) on distroless/static: no shell, no libc,
# user 65532, as the chart's Deployment runs it (runAsNonRoot, read-only root filesystem).

FROM rust:1.95 AS builder
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
# The musl target of the platform being built (x86_64-unknown-linux-musl on amd64).
RUN case "${TARGETARCH:-amd64}" in \
      amd64) echo x86_64-unknown-linux-musl ;; \
      arm64) echo aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac > /rust-target \
 && rustup target add "$(cat /rust-target)"
WORKDIR /src
# Only what cargo needs; rust-toolchain.toml stays out, so the image's 1.95 toolchain builds.
COPY Cargo.toml Cargo.lock ./
COPY node node
COPY operator operator
COPY e2e e2e
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols
# ring (rustls' crypto) compiles C: musl-gcc is the C compiler of the musl target.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(cat /rust-target)" \
 && export "CC_$(echo "$target" | tr - _)=musl-gcc" \
 && cargo build --release --locked --target "$target" -p kuberaft-operator --bin raft-operator \
 && install -D -m 0755 "target/$target/release/raft-operator" /out/raft-operator

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="raft-operator" \
      org.opencontainers.image.description="The KubeRaft operator: reconciles RaftCluster resources into StatefulSets of raft-node pods" \
      org.opencontainers.image.source="https://github.com/kuberaft/kuberaft" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /out/raft-operator /usr/local/bin/raft-operator
USER 65532:65532
# /metrics and /healthz.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/raft-operator"]
CMD ["run"]
