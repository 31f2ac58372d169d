"""Grafana dashboards and datasources as code."""
