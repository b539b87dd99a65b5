# One image for every Python service of the lab (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The pinned dependencies first, installed from pyproject.toml with a placeholder package
# and README (pyproject.toml names it): a change to the lab's code or docs rebuilds only the
# layer below, not every wheel.
COPY pyproject.toml ./
RUN mkdir poollab && touch poollab/__init__.py README.md \
    && pip install . \
    && pip uninstall -y poollab \
    && rm -rf poollab build *.egg-info README.md

COPY README.md ./
COPY poollab ./poollab
COPY loadtest ./loadtest
RUN pip install --no-deps . && rm -rf build *.egg-info

# Your own job modules (POOLLAB_JOBS): docker-compose.yml mounts ./jobs here, read-only, and
# its modules import by their own names (POOLLAB_JOBS=mytasks for jobs/mytasks.py). The
# folder exists without the mount too, so the path is never a dangling entry.
ENV PYTHONPATH=/app/jobs
RUN mkdir -p /app/jobs

# Not root: a job runs whatever code its kind names, and nothing here needs privileges.
# .poollab/ is where the lab writes (the collector's raw data, `poollab load` results).
RUN useradd --create-home --uid 10001 lab \
    && mkdir -p .poollab/collector \
    && chown -R lab:lab .poollab
USER lab

# docker-compose.yml gives each service its command; this one is for `docker run`.
CMD ["poollab", "--help"]
