"""Command-line interface: thin Typer wrappers over plain Python functions."""
