#!/bin/bash
# InfluxDB 2.x for EIT Monitor: the v1 compatibility the platform uses (its ingest writes and
# Grafana reads through the v1 API, InfluxQL). The influxdb:2 image runs the executable *.sh files
# of /docker-entrypoint-initdb.d once, after its first-start setup (DOCKER_INFLUXDB_INIT_MODE=setup)
# has made the organisation, the bucket, its retention and the admin token; it exports
# DOCKER_INFLUXDB_INIT_BUCKET_ID and configures the `influx` CLI with that token.
set -euo pipefail

: "${DOCKER_INFLUXDB_INIT_ORG:?}" "${DOCKER_INFLUXDB_INIT_BUCKET_ID:?}" "${EIT_INFLUX_DATABASE:?}"
: "${EIT_INFLUX_INGEST_USER:?}" "${EIT_INFLUX_INGEST_PASSWORD:?}"
: "${EIT_INFLUX_GRAFANA_USER:?}" "${EIT_INFLUX_GRAFANA_PASSWORD:?}"

# The v1 database (and its default retention policy) the platform names maps onto the bucket.
influx v1 dbrp create \
  --org "$DOCKER_INFLUXDB_INIT_ORG" \
  --bucket-id "$DOCKER_INFLUXDB_INIT_BUCKET_ID" \
  --db "$EIT_INFLUX_DATABASE" \
  --rp autogen \
  --default

# The ingest writes and reads the bucket (eit serve: store.username / store.password).
influx v1 auth create \
  --org "$DOCKER_INFLUXDB_INIT_ORG" \
  --username "$EIT_INFLUX_INGEST_USER" \
  --password "$EIT_INFLUX_INGEST_PASSWORD" \
  --read-bucket "$DOCKER_INFLUXDB_INIT_BUCKET_ID" \
  --write-bucket "$DOCKER_INFLUXDB_INIT_BUCKET_ID"

# Grafana only reads it.
influx v1 auth create \
  --org "$DOCKER_INFLUXDB_INIT_ORG" \
  --username "$EIT_INFLUX_GRAFANA_USER" \
  --password "$EIT_INFLUX_GRAFANA_PASSWORD" \
  --read-bucket "$DOCKER_INFLUXDB_INIT_BUCKET_ID"
