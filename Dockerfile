# One image for both processes: `serve` (the default command) and `clock`.
#   docker build -t credits-bot .
#   docker run --env-file .env -p 3000:3000 credits-bot          # web
#   docker run --env-file .env credits-bot clock                 # the scheduler
# compose.yaml runs both next to PostgreSQL. Dependencies come from the hashed
# lock (requirements.txt, generated from pyproject.toml).
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/credits-bot
WORKDIR /src
COPY requirements.txt ./
RUN /opt/credits-bot/bin/pip install --require-hashes --no-deps -r requirements.txt
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN /opt/credits-bot/bin/pip install --no-deps . \
    && /opt/credits-bot/bin/credits-bot --version

FROM python:${PYTHON_VERSION}-slim
RUN groupadd --gid 10001 credits \
    && useradd --uid 10001 --gid credits --create-home --shell /usr/sbin/nologin credits
COPY --from=build /opt/credits-bot /opt/credits-bot
ENV PATH=/opt/credits-bot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=3000
USER 10001:10001
# The default DATABASE_URL (sqlite:///credits-bot.sqlite3) lands here; use PostgreSQL
# for anything but a trial (compose.yaml does).
WORKDIR /home/credits
EXPOSE 3000
# Liveness of `serve` (GET /healthz). The clock serves no HTTP: compose.yaml turns
# this off for it, as should any other orchestrator running `clock`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]
ENTRYPOINT ["credits-bot"]
CMD ["serve"]
