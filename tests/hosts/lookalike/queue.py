"""A user's module that happens to be called queue.py (loaded by path by
tests/hosts/labels.py): its get() is not the standard library's Queue.get."""

import time


def get(seconds: float) -> None:
    time.sleep(seconds)
