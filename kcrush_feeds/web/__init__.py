"""The HTTP endpoints of ``serve``: subscribe, confirm, unsubscribe, preferences."""
