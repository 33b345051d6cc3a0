"""``python -m kcrush_feeds`` runs the command line."""

from kcrush_feeds.cli.main import main

main(prog_name="kcrush-feeds")
