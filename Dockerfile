# syntax=docker/dockerfile:1
# Turnpike: one binary on a distroless base, running as non-root.
#
#   docker build -t turnpike .
#   docker run --rm turnpike version
#
# The dependency layer is built from the manifests alone (each crate stubbed with an empty
# source file), so editing Turnpike's sources rebuilds only Turnpike's crates.

FROM rust:1.95-bookworm AS build
WORKDIR /src

# 1. Dependencies: the manifests and the lock file, with stub sources.
COPY Cargo.toml Cargo.lock ./
COPY crates/core/Cargo.toml crates/core/
COPY crates/api/Cargo.toml crates/api/
COPY crates/telemetry/Cargo.toml crates/telemetry/
COPY crates/proxy/Cargo.toml crates/proxy/
COPY crates/controller/Cargo.toml crates/controller/
COPY crates/apiserver/Cargo.toml crates/apiserver/
COPY crates/openapi/Cargo.toml crates/openapi/
# Cargo reads every target a manifest names, benches included: each gets a stub too
# (tests/dockerfile.rs runs this step against the manifests).
RUN set -eu; \
    for c in core api telemetry proxy controller apiserver openapi; do \
      mkdir -p crates/$c/src && : > crates/$c/src/lib.rs; \
    done; \
    mkdir -p src benches/proxy crates/core/benches crates/controller/benches; \
    echo 'fn main() {}' > src/main.rs; \
    for b in benches/routing benches/routing_memory benches/apiserver benches/propagation \
      benches/proxy/server crates/core/benches/validation crates/core/benches/templates \
      crates/controller/benches/api_keys; do \
      echo 'fn main() {}' > $b.rs; \
    done; \
    cargo build --release --locked --bin turnpike; \
    rm -rf src crates/*/src crates/*/benches

# 2. Turnpike itself. Sources are touched so Cargo never takes a stub's build for them.
COPY crates crates
COPY src src
COPY config config
RUN find crates src -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --bin turnpike \
    && cp target/release/turnpike /turnpike

# 3. The runtime: glibc and libgcc only (distroless cc), as the nonroot user.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /turnpike /usr/local/bin/turnpike
# The allocator (mimalloc) commits arena memory as it is used and hands freed pages back at
# once: 10,000 ApiKeys cost a fresh gateway about 1.1 KiB each instead of 2.5
# (benches/scale/api_keys.py), with the proxy's instructions per request unchanged. The same
# settings are in .cargo/config.toml for `cargo run` (tests/dockerfile.rs keeps them equal).
ENV MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0
USER 65532:65532
EXPOSE 8443 9443 9090
ENTRYPOINT ["/usr/local/bin/turnpike"]
CMD ["run"]
