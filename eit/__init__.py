"""EIT Monitor's contract: wire format, model, site registry, standards, units and corrections,
time, errors, configuration reading, the store interface and the store schema's names."""

__version__ = "0.1.0"
