"""The cyclic garbage collector held off while a large document is built.

Parsing a 5 MB playbook makes millions of dicts, lists and nodes that all stay alive; every
few thousand of them the collector walks all the older ones again, for nothing (a parsed
document holds no reference cycles). That was half the CPU time of `closeloop validate` on
such a file. Reference counting still frees what is dropped; only the cycle search waits.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0  # callers inside paused_gc, in every thread
_was_enabled = False  # whether the first of them found the collector on


@contextmanager
def paused_gc() -> Iterator[None]:
    """The collector off inside the block, and back as it was once the last block (of any
    thread: the collector is one for the process) has ended. Nested blocks are fine."""
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()
