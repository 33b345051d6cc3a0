"""Getting the digest out: the SMTP pool, the deliveries ledger, the send run and its lock."""
