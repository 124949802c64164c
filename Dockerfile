# Build: docker build -t warmline .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/warmline /warmline

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/warmline warmline \
    && mkdir -p /var/lib/warmline/spill && chown -R warmline /var/lib/warmline
COPY --from=build /warmline /usr/local/bin/warmline
USER warmline
WORKDIR /var/lib/warmline
ENV WARMLINE_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["/usr/local/bin/warmline"]
CMD ["serve"]
