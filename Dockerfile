# The bankrecon worker; the same image runs the codec server and the bank simulator
# with another command (see docker-compose.yml).
#   docker build -t bankrecon .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Exactly the pinned versions (scripts/lock regenerates the file from pyproject.toml);
# --no-deps installs nothing unpinned, and pip check fails the build if a pin is missing.
COPY requirements.lock ./
RUN pip install --no-deps -r requirements.lock && pip check

COPY worker.py ./
COPY activities/ activities/
COPY bankrecon/ bankrecon/
COPY workflows/ workflows/

# Statement archives live in DATA_DIR: a volume that every worker of the task queue shares.
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin bankrecon \
    && mkdir /data \
    && chown bankrecon:bankrecon /data
ENV DATA_DIR=/data
VOLUME ["/data"]

USER bankrecon
CMD ["python", "worker.py"]
