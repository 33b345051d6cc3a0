"""Subscribers: who gets the digest, with which categories, in which state."""
