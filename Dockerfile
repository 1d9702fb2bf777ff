# syntax=docker/dockerfile:1
# LLM Code Deployment: one image for a VPS and for Hugging Face Spaces (Docker SDK).
#
#   docker build -t llm-deploy .                              # the full product: Chromium and Playwright
#   docker build --build-arg WITH_BROWSER=0 -t llm-deploy-slim .  # slim: no browser, so no self-check
#   docker run -p 5000:5000 --env-file .env -v llm-data:/app/data --stop-timeout 630 llm-deploy
#
# Runs `python main.py` (gunicorn's asgi worker, WEB_THREADS threads) as uid 1000, as Spaces requires,
# listening on $PORT (5000, the README front matter's app_port). No .env and no
# secret is baked in (.dockerignore): give them at run time (--env-file, Space secrets).

FROM python:3.11-slim-bookworm

# The default image holds Debian's Chromium and Playwright (the `browser` extra of pyproject.toml): the
# self-check, written checks and judging are what graders score, and Hugging Face Spaces builds this file
# with its defaults. WITH_BROWSER=0 builds a slim image without them (several hundred MB smaller; apps
# are then published unchecked). fonts-liberation (only recommended by chromium) gives pages real text
# metrics and readable screenshots. The test tools (the dev group) are never installed.
ARG WITH_BROWSER=1

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=5000 \
    DATA_DIR=/app/data \
    FORWARDED_ALLOW_IPS=*

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv

RUN if [ "$WITH_BROWSER" = "1" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends chromium fonts-liberation \
        && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /app

# Dependencies first, exactly as locked, so code changes reuse this layer.
COPY pyproject.toml uv.lock ./
RUN if [ "$WITH_BROWSER" = "1" ]; then uv sync --locked --no-dev --extra browser; else uv sync --locked --no-dev; fi \
    && rm -rf /root/.cache/uv

# The code stays root-owned (read-only for the service); only DATA_DIR is writable.
COPY . .
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin app \
    && mkdir -p /app/data \
    && chown 1000:1000 /app/data

USER 1000
EXPOSE 5000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/health' % os.environ.get('PORT', '5000'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

CMD ["python", "main.py"]
