# The dashboard under gunicorn, as a non-root user.
#   docker build -t prompt-dashboard .
# The builder installs the dependencies into a virtual environment; the final stage gets only
# that environment and the application code, no pip cache and no build files.
FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml ./
# Only the runtime dependencies named in pyproject.toml: this layer is rebuilt only when they change.
RUN python -m venv /opt/venv \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && /opt/venv/bin/pip install -r requirements.txt

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PATH=/opt/venv/bin:$PATH \
    PORT=8050 \
    GUNICORN_WORKERS=2
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home dashboard
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# The code stays owned by root: the app user can read it but not change it.
COPY app.py settings.py alembic.ini ./
COPY db ./db
COPY services ./services
COPY store ./store
COPY components ./components
COPY pages ./pages
COPY templates ./templates
COPY assets ./assets
# devtools.phoenix makes the Phoenix API keys (`python -m devtools.phoenix keys ...`).
COPY devtools ./devtools
# Only instance/ is writable: the SQLite and chdb defaults, for a single container without
# DATABASE_URL or STORE_URL (chdb then needs GUNICORN_WORKERS=1: one process per directory).
RUN mkdir instance && chown dashboard:dashboard instance
USER dashboard
EXPOSE 8050
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=5 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8050'), timeout=2)"]
# Migrate our database and the facts store, then serve. Every replica runs both; Alembic's
# version table and the store's idempotent migrations keep a second run a no-op. More gunicorn
# flags go in GUNICORN_CMD_ARGS (gunicorn reads it itself).
CMD ["sh", "-c", "alembic upgrade head && python -m store.migrate && exec gunicorn --bind 0.0.0.0:${PORT} --workers ${GUNICORN_WORKERS} --access-logfile - app:server"]
