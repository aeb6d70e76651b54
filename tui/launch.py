"""Start the debugger fast: the engine works in a child process while Textual loads.

Importing Textual is most of a cold start.  A trace in the on-disk cache (engine.store) is
read before Textual loads, without Unicorn, Capstone or Keystone; otherwise the scenario
runs in a child process forked before anything else is imported (tui.loader: the child the
app uses to open files), so that the engine and Textual load on two cores at once rather
than taking turns on the GIL, and the first frame shows the scenario's values as soon as
both are done.
"""

from __future__ import annotations

import gc
import sys


def run_app(path: str | None) -> int:
    """Run the scenario at ``path`` (None: the built-in default) and open the debugger on it.

    A scenario that cannot be loaded is reported on stderr before any screen is drawn.
    """
    from engine.errors import ScenarioError
    from engine.paths import default_scenario_path
    from engine.run.cached import cached_trace
    from engine.scenario.reader import read_scenario_bytes

    target = path if path is not None else default_scenario_path()
    try:
        data = read_scenario_bytes(target)
    except ScenarioError as error:
        print(f"syscall-tui: {error}", file=sys.stderr)  # the error names the file
        return 2
    trace = cached_trace(data, target)
    loading = None
    if trace is None:
        from tui.loader import start_load

        # Forked now, while this is the only thread and no import is under way.
        loading = start_load(target)

    from tui.app import SyscallTuiApp
    from tui.loader import LoadError

    if loading is not None:
        try:
            trace, data = loading.result()
        except LoadError as error:
            print(f"syscall-tui: {error}", file=sys.stderr)
            return 2
    assert trace is not None  # from the cache or from the child
    app = SyscallTuiApp(trace, source=data)
    app.first_frame = freeze_start_up
    app.run()
    return app.return_code or 0


def freeze_start_up() -> None:
    """Keep what start-up built out of the cyclic collector's walks, in a process that
    runs one app.

    Textual, the engine, the trace and the widgets live as long as the app; each full
    collection walked them all again, and one took 80 ms of a step (a key's frame is
    7 ms).  Frozen, they are never collected (a cycle among them that is garbage already
    stays, once); what the app makes from here on is collected as usual.  Not for a
    process that makes many apps (the tests).
    """
    gc.freeze()
