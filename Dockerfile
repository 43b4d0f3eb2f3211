# One image for every billing-sync service (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BILLING_SYNC_MAPPINGS_DIR=/app/mappings

WORKDIR /app
COPY pyproject.toml README.md ./
COPY sync ./sync
COPY workers ./workers
COPY mappings ./mappings
RUN pip install '.[ops]' \
    && useradd --system --uid 10001 --home-dir /app billing \
    && mkdir -p /data /var/lib/billing-sync \
    && chown billing /data /var/lib/billing-sync

USER billing
EXPOSE 8000 8700 5555
CMD ["billing-sync", "run", "--host", "0.0.0.0", "--port", "8000"]
