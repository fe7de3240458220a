# syntax=docker/dockerfile:1
# Turnpike: one binary on a distroless base, running as non-root.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY src src
COPY benches benches
COPY config config
RUN cargo build --locked --release --bin turnpike

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/turnpike /usr/local/bin/turnpike
USER 65532:65532
EXPOSE 8443 9443 9090
ENTRYPOINT ["/usr/local/bin/turnpike"]
CMD ["run"]
