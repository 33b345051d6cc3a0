"""The command line: one click group, the context every command shares, one module per command."""
