"""Stopping the gRPC server within a bound, whatever grpcio does.

close() (explicit, or the atexit hook) must never be what keeps a host from
going on or from exiting. grpcio gives no such bound: `server.stop(None)`
blocks inside the call until every call's state is gone, and `.wait()` on the
event of `stop(grace)` likewise. One undecodable reflection request left such
state behind (grpcio 1.66 to 1.85, see _interceptors), and the host's close()
then waited forever (12 of 12 runs in issue 18). Any other grpcio bug of that
kind would do the same.

So the stop runs on a worker of the server's own pool and close() waits for
it at most `grace + STOP_MARGIN` seconds. A worker, not a new thread: from
CPython 3.12 on, no thread can be started at interpreter exit, which is when
the atexit hook runs, and the pool keeps workers started for exactly that.

Hazard: after a stop that ran out of time, the worker stays blocked in
grpcio (a daemon thread, gone at exit) and gRPC's listeners may stay open;
close() still removes the socket file, so no client finds them.
"""

from __future__ import annotations

import concurrent.futures
import logging

import grpc

from threadctl._rpc._executor import DaemonThreadPool

logger = logging.getLogger("threadctl")

# Seconds a stop may take beyond its grace period before close() gives up on it.
STOP_MARGIN = 1.0


def stop_within_bound(server: grpc.Server, pool: DaemonThreadPool, grace: float | None) -> bool:
    """Stop `server`, waiting at most `grace` (None: 0) plus STOP_MARGIN seconds.

    Args:
        server: the started gRPC server.
        pool: its executor; one of its workers runs the stop.
        grace: as for grpc.Server.stop: seconds calls in flight get before
            they are cancelled; None cancels them at once.

    Returns:
        True if gRPC finished stopping in time, False if close() goes on
        without it (logged as a warning).
    """
    bound = (grace or 0.0) + STOP_MARGIN
    try:
        stopped = pool.submit(_stop, server, grace, bound)
        finished: bool = stopped.result(timeout=bound)
    except concurrent.futures.TimeoutError:
        finished = False
    if not finished:
        logger.warning(
            "threadctl: gRPC did not finish stopping within %.1f s; the control socket is"
            " removed and gRPC's threads are left to end with the process",
            bound,
        )
    return finished


def _stop(server: grpc.Server, grace: float | None, bound: float) -> bool:
    try:
        stopping = server.stop(grace)
    except RuntimeError:
        # stop(grace) starts a thread to cancel calls after the grace period,
        # which CPython 3.12 refuses at interpreter exit; None starts none.
        stopping = server.stop(None)
    return stopping.wait(bound)
