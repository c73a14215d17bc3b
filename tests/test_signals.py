"""A SIGTERM inside a training step or a cancel checkpoint is held until that work is whole."""

import os
import signal

import pytest
from prefect.exceptions import TerminationSignal

from ltm.flows.signals import sigterm_deferred


def test_sigterm_inside_the_block_is_raised_after_it_and_the_handler_comes_back():
    def outer_handler(signum, frame):
        raise AssertionError("the outer handler must not run inside the block")

    previous = signal.signal(signal.SIGTERM, outer_handler)
    finished = []
    try:
        with pytest.raises(TerminationSignal):
            with sigterm_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                finished.append("rest of the step")
        assert finished == ["rest of the step"]
        assert signal.getsignal(signal.SIGTERM) is outer_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_without_a_signal_the_block_runs_plainly():
    with sigterm_deferred():
        value = 1 + 1
    assert value == 2
