# syntax=docker/dockerfile:1
# One image for every Tether process; docker-compose.yml picks the role by its command:
#   api      uvicorn --factory api.main:app --host 0.0.0.0 --port 8000 --timeout-graceful-shutdown 5 (default)
#   worker   python -m worker
#   runner   python -m runner            (with TETHER_RUNNER_HOST=0.0.0.0)
#   migrate  tether migrate              (one-shot, before api and worker)

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so a code change does not rebuild them.
COPY pyproject.toml ./
RUN python -c "import tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(deps))" > requirements.txt \
 && pip wheel --wheel-dir /wheels -r requirements.txt
COPY README.md worker.py ./
COPY tether tether
COPY clients clients
COPY workflows workflows
COPY activities activities
COPY api api
COPY store store
COPY runner runner
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TETHER_DATA_DIR=/var/lib/tether
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/tether tether \
 && install -d -o tether -g tether /var/lib/tether
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels tether
USER tether
WORKDIR /home/tether
# API, runner, worker metrics.
EXPOSE 8000 8700 9464
CMD ["uvicorn", "--factory", "api.main:app", "--host", "0.0.0.0", "--port", "8000", "--timeout-graceful-shutdown", "5"]
