"""Getting the digest out: the SMTP pool, the result writer, the send run and its lock."""
