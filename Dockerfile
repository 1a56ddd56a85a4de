# Keel's production image. test/deploy/image.test.ts replays these COPY/RUN/CMD lines without Docker
# (a clean directory, the same npm ci, the same start command), so what is written here is what is tested.
#
#   docker build -t keel:0.1.0 .
#   docker run --read-only -p 3000:3000 -v keel-data:/app/data -v "$PWD/tls:/etc/keel/tls:ro" \
#     -e TLS_CERT_FILE=/etc/keel/tls/tls.crt -e TLS_KEY_FILE=/etc/keel/tls/tls.key -e JWT_SECRET keel:0.1.0

# The official image at the exact Node version the test suite runs on (the `node` devDependency): a
# release tag, not `24-slim`, so a rebuild never changes the runtime under a passing suite; slim
# Debian (trixie, the current stable) for glibc and a small surface. Bump both together.
ARG NODE_VERSION=24.21.0

# Stage 1: production dependencies only. The bench workspace is not copied; npm ci skips it.
FROM node:${NODE_VERSION}-trixie-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
# The data directory exists in the image so a volume mounted there starts owned by the runtime user.
RUN mkdir data

# Stage 2: the runtime. Only node_modules and the server's own folders; no npm step, no tests, no bench.
FROM node:${NODE_VERSION}-trixie-slim
LABEL org.opencontainers.image.title="keel" \
      org.opencontainers.image.description="Fastify 5 service template: HTTPS (TLS 1.3) + HTTP/2, WebSockets, SSE" \
      org.opencontainers.image.version="0.1.0"
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps --chown=1000:1000 /app/data ./data
COPY package.json server.ts app.ts ./
COPY core ./core
COPY edge ./edge
COPY auth ./auth
COPY realtime ./realtime
COPY outbound ./outbound
COPY resources ./resources
COPY telemetry ./telemetry
# The code stays root-owned (the process cannot change it); it runs as the image's `node` user, by
# number so Kubernetes can check runAsNonRoot. Writable: /app/data only (mount a volume there).
USER 1000:1000
VOLUME ["/app/data"]
# The API, and the metrics listener (METRICS_PORT; it binds METRICS_HOST, loopback unless set).
EXPOSE 3000 9464
# Keel drains and exits 0 on SIGTERM; exec form makes node PID 1, with no shell or npm to swallow it.
# telemetry/register.ts starts tracing before the app when OTEL_EXPORTER_OTLP_ENDPOINT is set.
STOPSIGNAL SIGTERM
CMD ["node", "--import", "./telemetry/register.ts", "server.ts"]
