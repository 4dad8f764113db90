"""The ``mailport`` command line (Typer)."""
