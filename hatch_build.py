"""Build hook: compile the gettext catalogues (engine/locale/*/LC_MESSAGES/*.po) to .mo.

A wheel gets each .mo next to its .po, so an installed syscall-tui needs neither Babel
nor the .po at run time.  An editable install compiles them into the source tree
instead (the .mo files are ignored by git); a plain checkout compiles on demand
(engine.i18n.catalogue).  Babel does the compiling, as msgfmt would.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def compile_catalogue(po: Path, mo: Path) -> None:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fp:
        catalog = read_po(fp)
    mo.parent.mkdir(parents=True, exist_ok=True)
    with mo.open("wb") as fp:
        write_mo(fp, catalog)


class CatalogueBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        catalogues = sorted((root / "engine" / "locale").glob("*/LC_MESSAGES/*.po"))
        if version == "editable":
            for po in catalogues:
                compile_catalogue(po, po.with_suffix(".mo"))
            return
        self._tmp = Path(tempfile.mkdtemp(prefix="syscall-tui-mo-"))
        for po in catalogues:
            relative = po.relative_to(root).with_suffix(".mo")
            mo = self._tmp / relative
            compile_catalogue(po, mo)
            build_data["force_include"][str(mo)] = relative.as_posix()

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
