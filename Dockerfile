# Nanofolks in a container:
#   docker build -t nanofolks .
#   docker run -v ~/.nanofolks:/root/.nanofolks -p 127.0.0.1:18790:18790 nanofolks gateway
# The process runs as the non-root user `nanofolks` (uid 1000); /root/.nanofolks is a link to its home's
# .nanofolks, so the published mount above lands there (docs/docker.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# 1. Wheels for Nanofolks and its dependencies; llama.cpp compiled for any x86-64 CPU with AVX2
#    (packaging/llama-cmake-args), never for the build machine's own (a native build can carry AMX kernels that
#    crash elsewhere).
FROM ${PYTHON_IMAGE} AS wheels
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake git \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN sh packaging/build-wheels.sh /wheels

# 2. The WhatsApp bridge's Node dependencies, exactly as locked.
FROM ${NODE_IMAGE} AS bridge
WORKDIR /bridge
COPY bridge/package.json bridge/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bridge/src ./src

# 3. The runtime: Python, Node (for the bridge), the installed wheels; no compiler.
FROM ${PYTHON_IMAGE}
COPY --from=bridge /usr/local/bin/node /usr/local/bin/node
COPY packaging/install-runtime.sh /tmp/install-runtime.sh
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    sh /tmp/install-runtime.sh /wheels /opt/nanofolks && rm /tmp/install-runtime.sh
COPY --from=bridge /bridge /opt/bridge
RUN useradd --create-home --uid 1000 nanofolks \
 && mkdir -p /home/nanofolks/.nanofolks \
 && chown nanofolks:nanofolks /home/nanofolks/.nanofolks \
 && ln -s /home/nanofolks/.nanofolks /root/.nanofolks
ENV PATH=/opt/nanofolks/bin:$PATH \
    NANOFOLKS_HOME=/home/nanofolks/.nanofolks \
    NANOFOLKS_CHANNELS__WHATSAPP__BRIDGE_DIR=/opt/bridge \
    NANOFOLKS_DASHBOARD__HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
USER 1000:1000
WORKDIR /home/nanofolks
EXPOSE 18790
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["nanofolks", "status", "--json", "--check"]
ENTRYPOINT ["nanofolks"]
CMD ["gateway"]
