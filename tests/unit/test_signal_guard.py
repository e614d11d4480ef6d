"""A signal is noted even when the exception it raises is lost: Python swallows one raised
inside a weakref callback or a __del__, where a signal handler may happen to run."""

import signal

import pytest

from klink_sync.stack import Interrupted, signals_raise


def test_a_signal_whose_exception_is_swallowed_is_still_noted():
    with signals_raise() as guard:
        with pytest.raises(Interrupted):
            guard(signal.SIGTERM, None)  # then lost, as in "Exception ignored in: ..."
        assert guard.received == ["SIGTERM"]


def test_a_signal_while_deferring_is_noted_not_raised():
    with signals_raise() as guard:
        guard.deferring = True
        guard(signal.SIGHUP, None)
        assert guard.received == ["SIGHUP"]
