"""Hold Prefect's SIGTERM (raised as TerminationSignal) back while a unit of work must not be torn in half."""

import signal
import threading
from contextlib import contextmanager

from prefect.exceptions import TerminationSignal


@contextmanager
def sigterm_deferred():
    """A SIGTERM received inside the block is raised as TerminationSignal when the block ends.

    Used around each training step (so a cancel checkpoint never holds half an optimizer update and the
    run's reported step matches it) and around saving the cancel checkpoint itself.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if received:
            raise TerminationSignal(signal=received[0])
