"""The server application: the `eit` command line, `eit serve` and `eit demo` (the composition
roots that wire ingest, rules and API together), the HTTP API and web pages, accounts and broker
tooling. Nothing here is imported by the contract (`eit`), the agent (`edge`), the ingest or the
rules."""
