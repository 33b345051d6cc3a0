"""``schedule``: the digest's triggers and the service that builds and sends on time."""
