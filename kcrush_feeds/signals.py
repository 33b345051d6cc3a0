"""SIGTERM and SIGINT set a ``threading.Event``: the one way a run is asked to stop.

``send`` and ``schedule`` both use it: the work in flight watches the event (the send's
delivery loop polls it), so a signal stops them the same way whichever thread does the
work. Signals can be caught only in the main thread; elsewhere installing is a no-op
(``schedule`` runs the send in a worker thread, and its main thread holds the handlers).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(
    stop: threading.Event,
    *,
    first: Callable[[str], None],
    again: Callable[[str], None] | None = None,
) -> Callable[[], None]:
    """SIGTERM and SIGINT set ``stop``; returns a function that restores the old handlers.

    ``first`` is called with the signal's name ("SIGTERM") when ``stop`` is not yet set;
    ``again``, if given, when a signal arrives with ``stop`` already set (it may raise
    ``SystemExit`` to stop at once). Outside the main thread nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not stop.is_set():
            first(name)
        elif again is not None:
            again(name)
        stop.set()

    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}

    def restore() -> None:
        for signum, old in previous.items():
            # None: a handler not installed from Python; the default is the closest.
            signal.signal(signum, old if old is not None else signal.SIG_DFL)

    return restore
