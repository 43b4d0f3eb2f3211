"""The top floor: Celery bound to the library, and the ``billing-sync`` entry point.

:mod:`workers.cli` hands the Celery task queue (:mod:`workers.queue`) to the library's
CLI; :mod:`workers.app` is the Celery app and beat schedule; :mod:`workers.tasks` the
thin named tasks; :mod:`workers.process` what one worker process keeps between tasks.
"""
