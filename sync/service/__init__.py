"""The background service: jobs, their schedule, locks, the API budget guard, heartbeats.

The same jobs run under Celery (workers/) and in one process (``billing-sync run``);
everything here is independent of which: a broker's task queue is handed in as a
:class:`sync.service.queue.TaskQueue` by whoever binds one (workers/). The service also
owns what every process reads about the work: the listener's state
(:mod:`sync.service.listener_status`, which the events listener reports into), the one
status read model (:mod:`sync.service.status`) and the flusher that moves counter
tallies to the database (:mod:`sync.service.flush`).
"""
