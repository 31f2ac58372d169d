"""Real services for the tests and the benchmark (Mosquitto, InfluxDB, PostgreSQL, `eit serve`
processes, a Modbus meter, the town builder). Part of the source checkout, not of the package."""
