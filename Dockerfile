# The Headwater image: every service of docker-compose.yml runs a `headwater` command from it.
# Models ship inside pip packages (all-MiniLM-L6-v2, en_core_web_sm), so nothing is downloaded at run time.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

# torch first, pinned as in scripts/setup, and the CPU build: PyPI's default wheel brings several GB of
# CUDA libraries. `pip install .` then finds torch==2.13.0 satisfied and leaves it alone.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

COPY pyproject.toml README.md /tmp/src/
COPY schemas /tmp/src/schemas
COPY services /tmp/src/services
COPY headwater /tmp/src/headwater
RUN pip install /tmp/src && rm -rf /tmp/src \
    && pip install --no-deps "unstructured-inference==1.6.14"  # as scripts/setup: PDF parsing needs it

# Export the int8 ONNX model now (from the packaged weights) so no container exports it at start.
ENV HEADWATER_EMBEDDER_ONNX_CACHE_DIR=/opt/headwater/onnx
RUN python -c "from services.embedder.adapters.onnx import OnnxBackend; \
from services.embedder.config import EmbedderSettings; \
OnnxBackend(cache_dir=EmbedderSettings().onnx_cache_dir)"

RUN useradd --create-home --uid 10001 headwater \
    && mkdir -p /var/lib/headwater \
    && chown headwater /var/lib/headwater
USER headwater
WORKDIR /var/lib/headwater
ENV HEADWATER_HOME=/var/lib/headwater \
    HEADWATER_METRICS_PORT=9400

EXPOSE 9400
# Every `headwater run` process serves Prometheus metrics; a process that stopped serving them is unhealthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD python -c 'import os, urllib.request as u; u.urlopen("http://127.0.0.1:%s/metrics" % os.environ["HEADWATER_METRICS_PORT"], timeout=4)' || exit 1

CMD ["headwater", "--help"]
