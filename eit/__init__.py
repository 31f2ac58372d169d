"""EIT Monitor's shared contract: wire format, site registry, units, configuration, command line."""

__version__ = "0.1.0"
