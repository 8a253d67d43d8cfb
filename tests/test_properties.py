"""Property tests: arbitrary well-formed requests thrown at a live server.

Whatever the request, only its target may be stopped, the status is the one
the contract in threadctl.proto predicts (a small model of the validation
below), and the server answers health checks afterwards. The host
(tests/hosts/victims.py) keeps a population of cooperative and stubborn
threads; the stop state of every thread is compared before and after each
request. Examples are derandomized (the same ones on every run) and bounded,
so the suite stays deterministic and quick enough for CI.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from support import DEADLINE, HOSTS, Host, connect, host_env, wait_until
from threadctl.v1 import threadctl_pb2 as pb
from threadctl.v1 import threadctl_pb2_grpc as pb_grpc

# No shrinking: against a live process a replayed example meets other threads,
# so the first failing example is the one worth reporting.
EXAMPLES = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
IDENTITY = re.compile(r"[0-9]{1,20}\.[0-9a-f]{8}")
NONE = pb.STOP_STATE_NONE
OK, INVALID = grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND, REFUSED = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION

Threads = dict[str, pb.ThreadRecord]  # by identity
T = TypeVar("T")


def _start_victims(tmp_path_factory: pytest.TempPathFactory) -> Host:
    runtime: Path = tmp_path_factory.mktemp("run")
    os.chmod(runtime, 0o700)
    return Host([sys.executable, str(HOSTS / "victims.py")], host_env(runtime))


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    host = _start_victims(tmp_path_factory)
    try:
        with connect(host.ready["socket"]) as opened:
            yield opened
    finally:
        host.stop()


@pytest.fixture(scope="module")
def stop_all_channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    host = _start_victims(tmp_path_factory)  # StopAllThreads leaves few threads running
    try:
        with connect(host.ready["socket"]) as opened:
            yield opened
    finally:
        host.stop()


def _threads(stub: pb_grpc.ThreadControlStub) -> Threads:
    listing = stub.ListThreads(pb.ListThreadsRequest(), timeout=DEADLINE)
    return {t.identity: t for t in listing.threads if t.identity}


def _settled(stub: pb_grpc.ThreadControlStub) -> Threads:
    """A listing once stopped cooperative threads have exited, so the next
    request is judged against threads that stay as they are."""

    def calm() -> Threads | None:
        threads = _threads(stub)
        moving = any(t.name.startswith("coop-") and t.stop_state != NONE for t in threads.values())
        return None if moving else threads

    return wait_until(calm, what="stopped cooperative threads to exit")


def _serving(channel: grpc.Channel) -> bool:
    health = health_pb2_grpc.HealthStub(channel)
    response = health.Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
    return response.status == health_pb2.HealthCheckResponse.SERVING


def _newly_stopped(before: Threads, after: Threads, target: str | None) -> list[str]:
    """Threads other than `target` that were not stopped before and are now
    stopped or gone; threads that appeared must not be stopped either."""
    wrong = []
    for identity, thread in before.items():
        if identity == target or thread.stop_state != NONE:
            continue
        now = after.get(identity)
        if now is None and thread.protected:
            continue  # threadctl's own (the landing thread ends when no stop waits)
        if now is None or now.stop_state != NONE:
            state = "gone" if now is None else pb.StopState.Name(now.stop_state)
            wrong.append(f"{thread.name} ({identity}): {state}")
    for identity, thread in after.items():
        if identity not in before and thread.stop_state != NONE:
            wrong.append(f"new thread {thread.name} ({identity}): stopped")
    return wrong


def _call(method: grpc.UnaryUnaryMultiCallable, request: object) -> grpc.StatusCode:
    try:
        method(request, timeout=DEADLINE)
    except grpc.RpcError as error:
        return error.code()
    return OK


# ---------------------------------------------------------------- strategies

VALID_SECONDS = st.one_of(st.just(0.0), st.floats(0.0, 0.05))
INVALID_SECONDS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -1e-9, 3600.001, 1e308]),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not 0 <= x <= 3600),
)
REASONS = st.one_of(
    st.text(max_size=40),
    st.builds(lambda n, c: c * n, st.integers(1000, 1100), st.characters(codec="utf-8")),
)


def _live(items: Sequence[T]) -> st.SearchStrategy[T]:
    """One of `items` (live threads' values). Drawn as an index, so what
    Hypothesis records does not depend on how many threads are alive."""
    return st.integers(0, 255).map(lambda i: items[i % len(items)])


def _selectors(threads: Threads) -> st.SearchStrategy[pb.ThreadSelector | None]:
    idents = sorted(t.ident for t in threads.values())
    natives = sorted(t.native_id for t in threads.values() if t.native_id)
    return st.one_of(
        st.none(),
        st.builds(
            lambda i: pb.ThreadSelector(ident=i),
            st.one_of(_live(idents), st.integers(0, 2**64 - 1)),
        ),
        st.builds(
            lambda n: pb.ThreadSelector(native_id=n),
            st.one_of(_live(natives), st.integers(0, 2**32 - 1)),
        ),
    )


def _identities(threads: Threads) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(""),
        _live(sorted(threads)),
        st.from_regex(IDENTITY, fullmatch=True),
        st.text(max_size=30),
    )


def _arbitrary_stop_requests(threads: Threads) -> st.SearchStrategy[pb.StopThreadRequest]:
    """Any well-formed request: each field anything its type can carry."""
    return st.builds(
        pb.StopThreadRequest,
        thread=_selectors(threads),
        expected_identity=_identities(threads),
        mode=st.one_of(
            st.sampled_from(sorted(pb.StopMode.values())), st.integers(-(2**31), 2**31 - 1)
        ),
        reason=REASONS,
        wait_seconds=st.one_of(VALID_SECONDS, INVALID_SECONDS),
        allow_main_thread=st.booleans(),
        grace_seconds=st.one_of(st.just(0.0), VALID_SECONDS, INVALID_SECONDS),
    )


@st.composite
def _acceptable_stop_requests(draw: st.DrawFn, threads: Threads) -> pb.StopThreadRequest:
    """Requests that pass validation, aimed at live threads (most arbitrary
    requests are refused for one field or another, and a stop must happen
    often for the property to mean something)."""
    target = draw(_live(sorted(threads.values(), key=lambda t: t.identity)))
    by_native = draw(st.booleans())
    mode = draw(st.sampled_from(sorted(pb.StopMode.values())))
    return pb.StopThreadRequest(
        thread=pb.ThreadSelector(native_id=target.native_id)
        if by_native
        else pb.ThreadSelector(ident=target.ident),
        expected_identity=draw(st.sampled_from(["", target.identity])),
        mode=mode,
        reason=draw(st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=40)),
        wait_seconds=draw(VALID_SECONDS),
        allow_main_thread=draw(st.booleans()),
        grace_seconds=draw(VALID_SECONDS) if mode == pb.STOP_MODE_FORCE else 0.0,
    )


def _stop_requests(threads: Threads) -> st.SearchStrategy[pb.StopThreadRequest]:
    return st.one_of(_acceptable_stop_requests(threads), _arbitrary_stop_requests(threads))


# --------------------------------------------------------- the model of the contract


def _target(selector: pb.ThreadSelector, threads: Threads) -> pb.ThreadRecord | None:
    which = selector.WhichOneof("id")
    for thread in threads.values():
        if (which == "ident" and thread.ident == selector.ident) or (
            which == "native_id" and thread.native_id == selector.native_id
        ):
            return thread
    return None


def _valid_selector(request: pb.StopThreadRequest | pb.GetThreadRequest) -> bool:
    which = request.thread.WhichOneof("id")
    return which is not None and getattr(request.thread, which) > 0


def _valid_stop_arguments(reason: str, wait: float, grace: float, force: bool) -> bool:
    return (
        len(reason) <= 1024
        and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in reason)
        and all(math.isfinite(s) and 0 <= s <= 3600 for s in (wait, grace))
        and not (grace > 0 and not force)
    )


def _expected_stop(request: pb.StopThreadRequest, threads: Threads) -> grpc.StatusCode:
    force = request.mode == pb.STOP_MODE_FORCE
    if (
        not _valid_selector(request)
        or request.mode not in pb.StopMode.values()
        or (request.expected_identity and not IDENTITY.fullmatch(request.expected_identity))
        or not _valid_stop_arguments(
            request.reason, request.wait_seconds, request.grace_seconds, force
        )
    ):
        return INVALID
    target = _target(request.thread, threads)
    if target is None:
        return NOT_FOUND
    if (
        (request.expected_identity and request.expected_identity != target.identity)
        or target.protected
        or (target.main and not request.allow_main_thread)
    ):
        return REFUSED
    return OK


# ---------------------------------------------------------------------- tests


@EXAMPLES
@given(data=st.data())
def test_any_request_stops_at_most_its_target(channel: grpc.Channel, data: st.DataObject) -> None:
    stub = pb_grpc.ThreadControlStub(channel)
    before = _settled(stub)
    kind = data.draw(st.sampled_from(["stop", "stop", "stop", "get", "list"]), label="kind")
    target: pb.ThreadRecord | None = None
    if kind == "stop":
        request = data.draw(_stop_requests(before), label="request")
        expected = _expected_stop(request, before)
        target = _target(request.thread, before)
        code = _call(stub.StopThread, request)
    elif kind == "get":
        request = pb.GetThreadRequest(thread=data.draw(_selectors(before), label="selector"))
        found = _target(request.thread, before) is not None
        expected = INVALID if not _valid_selector(request) else OK if found else NOT_FOUND
        code = _call(stub.GetThread, request)
    else:
        request = pb.ListThreadsRequest(include_stacks=data.draw(st.booleans()))
        expected = OK
        code = _call(stub.ListThreads, request)
    after = _threads(stub)

    assert code == expected, f"{request} -> {code.name}, expected {expected.name}"
    stoppable = target.identity if target is not None and code == OK and kind == "stop" else None
    assert _newly_stopped(before, after, stoppable) == []
    if stoppable is not None:
        now = after.get(stoppable)
        assert now is None or now.stop_state != NONE, f"{request} left its target unstopped"
    assert _serving(channel)


@settings(EXAMPLES, max_examples=60)
@given(
    reason=REASONS,
    grace=st.one_of(VALID_SECONDS, INVALID_SECONDS),
    force=st.booleans(),
    wait=st.one_of(VALID_SECONDS, INVALID_SECONDS),
    include_main_thread=st.booleans(),
)
def test_stop_all_never_touches_protected_threads_and_main_only_when_asked(
    stop_all_channel: grpc.Channel,
    reason: str,
    grace: float,
    force: bool,
    wait: float,
    include_main_thread: bool,
) -> None:
    """StopAllThreads stops everything it may (its documented effect), so the
    property is about what it must leave alone, and about refusing bad input
    without stopping anything."""
    stub = pb_grpc.ThreadControlStub(stop_all_channel)
    before = _settled(stub)
    request = pb.StopAllThreadsRequest(
        reason=reason,
        grace_seconds=grace,
        force=force,
        wait_seconds=wait,
        include_main_thread=include_main_thread,
    )

    try:
        response = stub.StopAllThreads(request, timeout=DEADLINE)
        code = OK
    except grpc.RpcError as error:
        response, code = None, error.code()
    after = _threads(stub)

    valid = _valid_stop_arguments(reason, wait, grace, force=True)
    assert code == (OK if valid else INVALID), f"{request} -> {code.name}"
    spared = {
        identity
        for identity, thread in before.items()
        if thread.protected or (thread.main and not include_main_thread) or response is None
    }
    untouched = {k for k in spared if before[k].stop_state == NONE}
    # threadctl's own threads may end by themselves (the landing thread, once no stop waits)
    gone = {k for k in untouched if k not in after and not before[k].protected}
    stopped = [
        before[k].name
        for k in untouched
        if k in gone or (k in after and after[k].stop_state != NONE)
    ]
    assert stopped == [], "spared threads were stopped (or are gone)"
    if response is not None:
        acted_on = {report.thread.identity for report in response.threads}
        assert not acted_on & spared, "a protected thread, or main unasked, was acted on"
        # (one that exited by itself before the call, like a thread an earlier
        # example forced that was still unwinding, is not there to act on)
        left_out = [before[k].name for k in set(before) - spared - acted_on if k in after]
        assert left_out == [], "a thread that may be stopped was left out"
    assert _serving(stop_all_channel)
