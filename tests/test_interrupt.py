"""Stop requests: the first SIGINT / SIGTERM asks, the second stops at once, handlers come back."""
import os
import signal

import pytest

from labeldistill.runs import StopRequest


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_asks_second_stops(sig):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), sig)
        assert stop.requested and stop.signal == sig
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)
    assert {s: signal.getsignal(s) for s in before} == before


def test_nested_requests_restore_the_outer_one():
    with StopRequest() as outer:
        with StopRequest() as inner:
            os.kill(os.getpid(), signal.SIGTERM)
        assert inner.requested and not outer.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert outer.requested
