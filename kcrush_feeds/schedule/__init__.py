"""``schedule``: when to build and send (triggers, plan), the job bodies (jobs), and the
APScheduler runtime that fires them (service, the one module importing APScheduler)."""
