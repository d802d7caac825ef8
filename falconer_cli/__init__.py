"""The `falconer` command line: a thin layer over falconer_core and the Prefect flows."""
