"""Alerts: rules over stored readings, alert state, notifiers."""
