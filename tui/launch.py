"""Start the debugger fast: the engine works in a thread while Textual loads.

Importing Textual is most of a cold start and is pure Python; assembling the kernel and
running the scenario happen mostly in C (Keystone, Unicorn, Capstone), or not at all when the
trace is in the cache (engine.cache).  Starting the engine first lets the two overlap, and
the first frame shows the scenario's values as soon as both are done.
"""

from __future__ import annotations

import sys
import threading
from typing import Any


class _Background(threading.Thread):
    """Runs one scenario file; ``result()`` waits and returns or raises what it gave."""

    def __init__(self, path: str) -> None:
        super().__init__(name="syscall-tui engine", daemon=True)
        self.path = path
        self._value: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            from engine.cache import run_file

            self._value = run_file(self.path)
        except BaseException as error:  # handed to the main thread by result()
            self._error = error

    def result(self) -> Any:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


def run_app(path: str | None) -> int:
    """Run the scenario at ``path`` (None: the built-in default) and open the debugger on it.

    A scenario that cannot be loaded is reported on stderr before any screen is drawn.
    """
    from engine.paths import default_scenario_path

    target = path if path is not None else default_scenario_path()
    worker = _Background(target)
    worker.start()
    from engine.errors import ScenarioError
    from tui.app import SyscallTuiApp

    try:
        trace, data = worker.result()
    except ScenarioError as error:
        print(f"syscall-tui: {error}", file=sys.stderr)  # the error names the file
        return 2
    app = SyscallTuiApp(trace, source=data)
    app.run()
    return app.return_code or 0
