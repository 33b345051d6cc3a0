"""The newsletter on the web: every sent digest as a page, an index, and feeds of issues."""
