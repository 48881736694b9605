"""models.gc_pause: the collector held off while a large playbook is built, and always back
as it was afterwards, however blocks nest or overlap across threads."""

from __future__ import annotations

import gc
import threading

import pytest

from models.gc_pause import paused_gc


def test_off_inside_and_back_after_nested_blocks_and_an_exception() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block still holds it
        raise RuntimeError
    assert gc.isenabled()


def test_a_collector_already_off_stays_off() -> None:
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_blocks_overlapping_in_threads_leave_it_on() -> None:
    inside, release = threading.Barrier(2), threading.Event()

    def hold() -> None:
        with paused_gc():
            inside.wait()
            release.wait(5)

    other = threading.Thread(target=hold)
    other.start()
    with paused_gc():
        inside.wait()
    assert not gc.isenabled()  # the other thread's block has not ended
    release.set()
    other.join()
    assert gc.isenabled()
