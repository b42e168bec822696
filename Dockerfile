# syntax=docker/dockerfile:1
# One image for every headrace pod: workflow steps (`python -m steps run ...`), sizing nodes, the
# exit handler, and the control room (`headrace control-room serve`).
#
#   docker build -t ghcr.io/headrace/headrace:0.1.0 .
#
# Stage 1 builds wheels into a virtualenv with the build tools; stage 2 copies only the
# virtualenv and the project's pipeline code into a slim image that runs as a non-root user.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/headrace
ENV PATH=/opt/headrace/bin:$PATH
WORKDIR /src
# Dependencies first: this layer is reused while only the code changes.
COPY pyproject.toml README.md ./
COPY steps/__init__.py steps/__init__.py
COPY pipelines/__init__.py pipelines/__init__.py
COPY control_room/__init__.py control_room/__init__.py
RUN pip install --upgrade pip setuptools wheel \
    && pip install ".[aws,postgres,events]" \
    && pip uninstall -y headrace
COPY steps steps
COPY pipelines pipelines
COPY control_room control_room
RUN pip install --no-deps ".[aws,postgres,events]" \
    && python -m compileall -q /opt/headrace

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
LABEL org.opencontainers.image.source="https://github.com/headrace/headrace" \
      org.opencontainers.image.description="headrace steps and control room" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/headrace/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEADRACE_STATE_DIR=/tmp/headrace \
    HOME=/tmp
RUN groupadd --system --gid 10001 headrace \
    && useradd --system --uid 10001 --gid headrace --home-dir /app --shell /usr/sbin/nologin headrace
COPY --from=build /opt/headrace /opt/headrace
WORKDIR /app
# The project's pipeline modules: the compiler turns `examples/recipe_stream:pipeline` into the
# dotted module `examples.recipe_stream:pipeline`, imported from this working directory.
COPY --chown=root:root examples examples
USER 10001:10001
EXPOSE 8080
# Steps override the command (`python -m steps run ...`); the default serves the control room.
CMD ["headrace", "control-room", "serve", "--host", "0.0.0.0", "--port", "8080"]
