"""Where records come from: HTTP, WordPress, feeds, and the configured sources."""
