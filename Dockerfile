# The service itself: one image, two roles.
#   docker run ... sandbox-service:latest                 the API  (`sandbox api`, the default)
#   docker run ... sandbox-service:latest sandbox worker  a worker (needs the Docker socket)
# Built by `make image`, which first provides the base (pulled, or bootstrapped with
# sandbox_images/bootstrap_base.sh where no registry is reachable).

# --- python: Debian's python3 with venv and pip's CAs -------------------------------------------
FROM debian:bookworm-slim AS python
# Extra CA certificates (PEM) for pip behind a TLS-intercepting proxy; empty elsewhere. Used in
# the build stages only, so they stay out of the final image.
ARG EXTRA_CA_CERTS=""
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -n "$EXTRA_CA_CERTS" ]; then printf '%s\n' "$EXTRA_CA_CERTS" >> "$PIP_CERT"; fi

# --- requirements: the runtime dependencies named in pyproject.toml ----------------------------
FROM python AS requirements
COPY pyproject.toml /src/
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /requirements.txt

# --- build: a virtualenv with the dependencies, then the package -------------------------------
FROM python AS build
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install -q --no-cache-dir --upgrade pip setuptools
# Copied by content: editing pyproject.toml elsewhere than its dependencies reuses this layer.
COPY --from=requirements /requirements.txt /src/requirements.txt
RUN /opt/venv/bin/pip install -q --no-cache-dir -r /src/requirements.txt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
RUN /opt/venv/bin/pip install -q --no-cache-dir --no-deps --no-build-isolation . \
 && /opt/venv/bin/pip uninstall -q -y pip setuptools

# --- run: Debian's python3 and the virtualenv, nothing else ------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/* \
 && groupadd --gid 10000 app \
 && useradd --uid 10000 --gid 10000 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SANDBOX_HOST=0.0.0.0 SANDBOX_PORT=8000
# The API needs nothing of the host: it runs as `app`. A worker drives the host's Docker engine
# through its socket, so it must be able to open it: run it with the socket's group added
# (`--group-add $(stat -c %g /var/run/docker.sock)`) or as root. Either is root-equivalent on
# that host; see the README's Deployment section.
USER 10000:10000
EXPOSE 8000
# The API's liveness; a worker has no HTTP endpoint (its heartbeat shows in /readyz?verbose=true),
# so its container runs with --no-healthcheck.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('SANDBOX_PORT', '8000'), timeout=2)"]
LABEL org.opencontainers.image.title="sandbox-service" \
      org.opencontainers.image.description="Sandboxed code execution: HTTP API and worker"
CMD ["sandbox", "api"]
