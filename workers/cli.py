"""The ``billing-sync`` command: the library's CLI with Celery bound as its task queue.

This is the composition root. :func:`sync.cli.main` knows every command but never imports
Celery; here, at the top of the house, the Celery binding is handed in, so ``run`` with a
broker and ``listen`` queue their work on the workers.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sync.cli import main as library_main
from sync.service.queue import TaskQueue
from sync.settings import Settings


def _celery_queue(settings: Settings) -> TaskQueue:
    # Celery and kombu are imported only by the commands that queue work.
    from workers.queue import celery_queue

    return celery_queue(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``billing-sync``; returns the process exit code."""
    return library_main(argv, task_queue=_celery_queue)


if __name__ == "__main__":
    sys.exit(main())
