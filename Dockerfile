# The platform's image: `eit serve` (ingest, rules, HTTP API) and `eit edge run` (the agent).
#   docker build -t eit-monitor .
#   docker run --rm eit-monitor --help
# docker-compose.yml builds it for the eit-serve and edge-sim services.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The build context is only what .dockerignore lets through: pyproject.toml, the README and
# the Python packages.
# The compliance report's PDF (WeasyPrint): Pango with libthai (Thai line breaks), HarfBuzz's
# subsetter and a Thai font.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
       libthai0 fonts-thai-tlwg fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
RUN pip install ".[server,edge,cluster]"

# Run as a user of its own. Its data folders are created here, owned by it, so that the named
# volumes mounted on them start out writable.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/eit --no-create-home eit \
    && mkdir -p /etc/eit /var/lib/eit /var/lib/eit-edge \
    && chown eit:eit /var/lib/eit /var/lib/eit-edge
USER eit
WORKDIR /var/lib/eit

EXPOSE 8080
ENTRYPOINT ["eit"]
CMD ["--help"]
