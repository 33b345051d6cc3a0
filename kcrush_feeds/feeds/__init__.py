"""The feeds: entries, one writer per format, the pages that show them, slugs, and the build."""
