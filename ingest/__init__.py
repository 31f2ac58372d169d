"""Ingest: broker subscription, decoding, validation, dead letters, stores, batching, acks."""
