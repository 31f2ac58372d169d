"""Performance and resilience harness (run with `eit bench`)."""
