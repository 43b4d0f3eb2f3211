"""The work of each ``billing-sync`` command (the arguments are declared in sync/cli.py).

:mod:`~sync.commands.pull` (sync, status, db, mappings), :mod:`~sync.commands.push`
(push, changes), :mod:`~sync.commands.run` (run, pause, resume),
:mod:`~sync.commands.listen`, :mod:`~sync.commands.demo`, and
:mod:`~sync.commands.launcher`, which starts the sandbox CRM as a child process for the
demo, the benchmarks and the tests.
"""
