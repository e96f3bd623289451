# syntax=docker/dockerfile:1
# The flotilla image: built from this repository, run as a non-root user on a small base.
#   docker build -t registry.example.com/platform/flotilla:0.1.0 .
# examples/ci/kubernetes-cronjob.yml runs it as user 65532, the base image's `nonroot`.

# ---- build: the toolchain the crate asks for (rust-version 1.95), on Debian 12 like the base below
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep the registry and the target directory between builds on one machine.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --bin flotilla \
    && install -m 0755 target/dist/flotilla /flotilla

# ---- runtime: glibc, libgcc and CA certificates (TLS verifies against them), no shell, no root
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /flotilla /usr/local/bin/flotilla
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/flotilla"]
CMD ["--help"]
