# syntax=docker/dockerfile:1
#
# Image of the akv-csi-provider binary.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 --build-arg BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
#     -t <registry>/akv-csi-provider:0.1.0 .
#
# The tag is the crate version, which is also the Helm chart's appVersion (the chart's default
# image tag). Without Docker, `bash scripts/image.sh` builds the same content from scratch with
# buildah and writes an OCI archive.
#
# Each platform is compiled natively in its own builder (QEMU for the foreign one):
# slower than cross-compiling but needs no cross toolchain for the C parts (aws-lc, ring).

ARG RUST_IMAGE=rust:1.95-slim-bookworm
# distroless "cc": glibc, libgcc and the Debian CA bundle (/etc/ssl/certs), which the TLS
# stack reads as the system trust store; no shell, no package manager. Pin it by digest
# in release builds.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12

FROM ${RUST_IMAGE} AS builder
# Version reported by --version and the gRPC Version call. The build reads them with
# option_env!("AKV_CSI_PROVIDER_VERSION") / option_env!("AKV_CSI_PROVIDER_BUILD_DATE")
# and falls back to Cargo.toml's version; they are left unset when the arguments are empty.
ARG VERSION=""
ARG BUILD_DATE=""
WORKDIR /src
COPY . .
# The slim image already has gcc and libc headers, all the C dependencies need; protobuf
# is compiled by build.rs without protoc. Caches keep downloaded crates and compiled
# dependencies between builds; the binary is copied out of the cached target dir.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    if [ -n "$VERSION" ]; then export AKV_CSI_PROVIDER_VERSION="$VERSION"; fi; \
    if [ -n "$BUILD_DATE" ]; then export AKV_CSI_PROVIDER_BUILD_DATE="$BUILD_DATE"; fi; \
    cargo build --release --locked --bin akv-csi-provider \
 && install -D -m 0755 target/release/akv-csi-provider /out/akv-csi-provider

FROM ${RUNTIME_IMAGE}
ARG VERSION=""
LABEL org.opencontainers.image.title="akv-csi-provider" \
      org.opencontainers.image.description="Azure Key Vault provider for the Secrets Store CSI driver" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=builder /out/akv-csi-provider /usr/local/bin/akv-csi-provider
# Unprivileged by default. The Helm chart and manifests run the container as root
# (runAsUser: 0, all capabilities dropped, read-only root filesystem) because the socket
# goes into a root-owned host directory shared with the driver; nothing else needs root.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/akv-csi-provider"]
