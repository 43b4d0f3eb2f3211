"""The background service: jobs, their schedule, locks, the API budget guard, heartbeats.

The same jobs run under Celery (workers/) and in one process (``billing-sync run``);
everything here is independent of which.
"""
