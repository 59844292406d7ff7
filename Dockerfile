# One image for every process; docker-compose.yml picks the Procfile line (web, worker, beat) per service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# PostgreSQL-style rule for our own processes too: nothing runs as root.
RUN useradd --system --uid 10001 --home-dir /app courier && mkdir -p /app/.local && chown courier /app/.local
USER courier

ENV PORT=8000 \
    CELERY_BEAT_SCHEDULE_FILE=/app/.local/celerybeat-schedule
EXPOSE 8000
CMD ["scripts/procfile.sh", "web"]
