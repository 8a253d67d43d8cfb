"""gunicorn config (`gunicorn -c gunicorn_conf.py ...`): a threadctl server in
every worker, none in the master.

gunicorn forks its workers, and a server's threads do not survive fork(), so
each worker installs its own in post_fork (its own PID, so its own socket:
`threadctl list --pid WORKER_PID`). The master never starts one: install()
in a child forked from a process that ran a server is refused with grpcio
older than 1.80, and here no worker ever is such a child.
"""

from typing import Any

import threadctl


def post_fork(server: Any, worker: Any) -> None:
    threadctl.install()
