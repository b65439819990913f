"""The command line: a Typer app and one thin module per command group."""
