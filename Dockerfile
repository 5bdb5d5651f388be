# rollbot's image: `rollbot serve` as user 10001, on a read-only root filesystem.
#
#   make image                      # buildah, else docker; tagged rollbot:<version from git>
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" -t rollbot:0.1.0 .
#
# BASE: any image whose python3 is Python 3.11. The default is the official slim image users
# pull; CI (.ci/image) builds this same file on a Debian bookworm base it makes with
# debootstrap, whose python3 is /usr/bin's, not /usr/local/bin's: nothing below names either.
# Both stages start from BASE, so the venv's python3 link to the base's interpreter holds.
#
# What rollbot writes at run time, all outside the image: the SQLite file under
# /var/lib/rollbot (database.url; a volume) and temporary files under /tmp (a volume where the
# root filesystem is read-only). Python writes no bytecode (compiled here), HOME has nothing.
ARG BASE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------- build
# A venv holding the runtime lock and rollbot, nothing else (no dev tools, no pip).
FROM ${BASE} AS build
# pip trusts the system's CA bundle (where a site adds its proxy's CA), not its own copy.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/rollbot/venv
# The runtime set only (requirements.lock, not requirements-dev.lock), every file checked
# against its hash, nothing resolved beyond it (--no-deps).
COPY requirements.lock /src/
RUN /opt/rollbot/venv/bin/pip install --no-cache-dir --require-hashes --no-deps \
        -r /src/requirements.lock
COPY pyproject.toml README.md /src/
COPY bot /src/bot
# rollbot itself, --no-deps: the lock is all it needs (pip check proves it). There is no
# .git here, so setuptools-scm takes VERSION (make image passes git's). pip and setuptools
# then leave the venv: nothing needs them at run time.
ARG VERSION=0+unknown
RUN SETUPTOOLS_SCM_PRETEND_VERSION_FOR_ROLLBOT="${VERSION}" \
        /opt/rollbot/venv/bin/pip install --no-cache-dir --no-deps /src \
    && /opt/rollbot/venv/bin/pip check \
    && /opt/rollbot/venv/bin/pip uninstall --yes --quiet pip setuptools

# ---------------------------------------------------------------------------- runtime
FROM ${BASE}
ARG VERSION=0+unknown
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="rollbot" \
      org.opencontainers.image.description="ChatOps incident and rollback bot for progressive delivery on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"

# 10001:10001, the numbers deploy/kubernetes runs as (runAsUser, runAsGroup, fsGroup). Its
# home does not exist: nothing is read from or written to it. /var/lib/rollbot is where the
# shipped configuration keeps SQLite (a volume in Kubernetes).
RUN groupadd --gid 10001 rollbot \
    && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /nonexistent \
        --no-create-home --shell /usr/sbin/nologin rollbot \
    && mkdir -p /var/lib/rollbot \
    && chown 10001:10001 /var/lib/rollbot

COPY --from=build /opt/rollbot/venv /opt/rollbot/venv
# The runbooks, where the catalog's relative paths (runbooks/payment-router.md) are looked
# up when they are not beside the config file (bot/settings/root.py, find_file): the
# working directory.
COPY runbooks/*.md /opt/rollbot/runbooks/
WORKDIR /opt/rollbot

ENV PATH=/opt/rollbot/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/nonexistent \
    ROLLBOT_CONFIG=/etc/rollbot/rollbot.yaml
USER 10001:10001
# 8080: Slack, the webhooks, the runbook pages; 9090: /metrics and the probes (server.internal_port)
EXPOSE 8080 9090
ENTRYPOINT ["rollbot"]
CMD ["serve"]
