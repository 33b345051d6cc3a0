"""Returned mail: reading mailboxes, classifying bounces, complaints, unsubscribes."""
