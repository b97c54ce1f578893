# The dashboard under gunicorn, as a non-root user.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY app.py settings.py alembic.ini ./
COPY pages ./pages
COPY components ./components
COPY services ./services
COPY db ./db
COPY devtools ./devtools
COPY templates ./templates
COPY assets ./assets
RUN pip install . && useradd --system --uid 10001 --home /app dashboard && chown -R dashboard /app
USER dashboard
ENV GUNICORN_WORKERS=2 PORT=8050
EXPOSE 8050
HEALTHCHECK --interval=15s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=2)"
# Migrate, then serve; the factory is built once per worker.
CMD ["sh", "-c", "alembic upgrade head && exec gunicorn --bind 0.0.0.0:${PORT} --workers ${GUNICORN_WORKERS} --access-logfile - app:server"]
