# syntax=docker/dockerfile:1
# finsent on CPU: python:3.11-slim, CPU-only torch, the shipped model, a non-root user.
#   docker build -t finsent .            (compose.yaml does this; the GPU image is Dockerfile.gpu)
# Nothing secret is baked in: settings come from FINSENT_* variables and an optional TOML
# mounted at /etc/finsent/finsent.toml (see docs/deploy.md).
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

# CJK fonts, so that images drawn inside the container (matplotlib) can carry Chinese text;
# the dashboard's text is drawn by the reader's browser with the reader's fonts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 finsent \
 && useradd --system --uid 10001 --gid finsent --create-home --home-dir /home/finsent finsent \
 && mkdir -p /etc/finsent

WORKDIR /app

# Dependencies first, in their own layers: they change far less often than the source.
# torch comes from the CPU index so no CUDA build (gigabytes) is pulled in.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The package, with the shipped model artifacts (models/finsent-minilm/, models/finsent-multilingual/), installed from a
# read-only view of the build context: one copy in site-packages, none left in a layer.
RUN --mount=type=bind,source=.,target=/src,rw \
    for m in finsent-minilm finsent-multilingual; do test -f "/src/models/$m/finsent.json" \
      || { echo "models/$m/ (a shipped model) is missing from the build context" >&2; exit 1; }; done \
 && pip install --no-deps /src \
 && printf '%s\n' \
      '#!/bin/sh' \
      '# Use the mounted TOML when there is one and FINSENT_CONFIG does not name another.' \
      'if [ -z "${FINSENT_CONFIG:-}" ] && [ -f /etc/finsent/finsent.toml ]; then' \
      '  export FINSENT_CONFIG=/etc/finsent/finsent.toml' \
      'fi' \
      'exec "$@"' > /usr/local/bin/finsent-entrypoint \
 && chmod 755 /usr/local/bin/finsent-entrypoint \
 && finsent --version \
 && python -c "import pathlib; from models.multitask import SHIPPED_MODEL_DIR as d; src = pathlib.Path('/src/models'); \
missing = [str(p.relative_to(src)) for m in ('finsent-minilm', 'finsent-multilingual') for p in (src / m).rglob('*') \
if p.is_file() and not (d.parent / p.relative_to(src)).is_file()]; \
assert not missing, f'model files not installed as package data: {missing}'"

USER finsent
WORKDIR /home/finsent
EXPOSE 9108 8501
ENTRYPOINT ["finsent-entrypoint"]
CMD ["finsent", "run"]
