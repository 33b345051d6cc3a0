"""``python -m kcrush_feeds`` runs the command line."""

from .cli import main

main(prog_name="kcrush-feeds")
