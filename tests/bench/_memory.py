"""Memory figures from RSS readings the host takes of itself (/proc/self/status).

Single readings, not distributions: RSS moves in pages and rarely shrinks, so
the figure is the difference of two readings around one change.
"""

from __future__ import annotations

from bench._report import Figure

MIB = 1024 * 1024
KIB = 1024


def install_rss(before: int, after: int, bare_before: int, bare_after: int) -> Figure:
    """RSS added by install() and one served listing, beside a bare gRPC server's."""
    return Figure(
        id="rss_install",
        label="RSS added by install() + 1 listing",
        unit="MiB",
        median=(after - before) / MIB,
        n=1,
        baseline=(bare_after - bare_before) / MIB,
        baseline_label="bare gRPC server+1 RPC",
        target_ratio=1.5,
    )


def per_thread_rss(before_park: int, parked: int, listed: int, added: int) -> Figure:
    """RSS per thread for being tracked (first listed), beside a bare parked thread's RSS."""
    return Figure(
        id="rss_per_thread",
        label=f"RSS per tracked thread ({added} first listed)",
        unit="KiB",
        median=(listed - parked) / added / KIB,
        n=1,
        baseline=(parked - before_park) / added / KIB,
        baseline_label="bare thread",
        target_max=1.0,  # KiB, absolute: the bare thread's own RSS is the OS's
    )
