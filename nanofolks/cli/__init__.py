"""The command line: one module per command group; each parses, calls a service, renders."""
