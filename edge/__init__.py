"""The edge agent: reads a factory's meters and publishes scans over MQTT, keeping them on disk
until the broker has acknowledged them. Imports only ``eit`` (the shared contract)."""
