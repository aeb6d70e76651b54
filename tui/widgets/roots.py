"""The two KPTI page-table roots side by side, which one CR3 selects, and what each maps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.content import Content
from textual.style import Style

from engine.i18n import N_, _, pgettext, tr
from engine.trace import MappedRegion, RootSummary
from engine.views.decode import decode_cr3, same_root
from tui.text import pad
from tui.widgets.panel import ViewPanel

NAME = 11
#: Labels used inside f-strings, marked where Babel sees them.
W_MOV_TO_CR3 = N_("MOV to CR3")
W_BIT63 = N_("(bit 63 {bit})")


def _page_flags(flags: str) -> str:
    """ "r-x user nx" with its owner word in the UI's language (pgettext "page")."""
    # The columns are already headed by the two roots (user, kernel): the cells say who
    # may use the page in a word of their own (the PTE's U/S bit: ユーザ / 特権 in Japanese).
    owner = {"user": pgettext("page", "user"), "kernel": pgettext("page", "kernel")}
    return " ".join(owner.get(w, w) for w in flags.split())


COLUMN = 17
REGION_NAME = 20
REGION_COLUMN = 13


@dataclass(frozen=True, slots=True)
class RootsView:
    roots: tuple[RootSummary, ...]  # the user and kernel roots, as walked by the engine
    cr3: int  # CR3 after the last step
    switched: bool  # the last step wrote CR3
    written: int | None = None  # what the latest MOV to CR3 wrote, bit 63 included


class RootsPanel(ViewPanel[RootsView]):
    """User and kernel CR3 decoded; the live one is marked; a CR3 write highlights both."""

    TITLE = N_("page-table roots (KPTI)")

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "roots--name",
        "roots--live",
        "roots--idle",
        "roots--switched",
        "roots--mapped",
        "roots--unmapped",
    }

    def view_changed(self, view: RootsView | None) -> None:
        # The title carries the news so that the rows keep their width.
        switched = view is not None and view.switched
        title = _(self.TITLE)
        self.set_title(f"{title} · {_(W_MOV_TO_CR3)}" if switched else title)

    def build(self, width: int) -> list[Content]:
        view = self.view
        if view is None:
            return []
        # User first, then kernel: the order the entry code moves between them.
        roots = sorted(view.roots, key=lambda r: (r.name != "user", r.name))
        if not roots:
            return [Content(_("no page-table roots recorded"))]
        name_style = self.style("roots--name")
        live = [same_root(view.cr3, root.cr3) for root in roots]

        def cell(text: str, index: int, *, emphasise: bool = False) -> tuple[str, Style]:
            if emphasise and view.switched:
                style = self.style("roots--switched")
            elif live[index]:
                style = self.style("roots--live")
            else:
                style = self.style("roots--idle")
            return pad(text, COLUMN), style

        def row(label: str, values: list[str], *, emphasise: bool = False) -> Content:
            return Content.assemble(
                (pad(label, NAME), name_style),
                *(cell(v, i, emphasise=emphasise) for i, v in enumerate(values)),
            )

        fields = [decode_cr3(r.cr3) for r in roots]
        live_word, user_half, kernel_half = _("live"), _("user half"), _("kernel half")
        lines = [
            row(
                "",
                [_(r.name) + (" ● " + live_word if live[i] else "") for i, r in enumerate(roots)],
                emphasise=True,
            ),
            row("cr3", [f"{r.cr3:016x}" for r in roots], emphasise=True),
            row(_(N_("pgd phys")), [f"{f.pgd:016x}" for f in fields]),
            row("pcid", [f"{f.pcid:03x}" for f in fields]),
            row(
                "bit 12 PTI",
                [f"{int(f.user_half)} {user_half if f.user_half else kernel_half}" for f in fields],
            ),
            Content.assemble(
                (pad(_("maps"), REGION_NAME), name_style),
                *((pad(_(r.name), REGION_COLUMN), name_style) for r in roots),
            ),
        ]
        lines[-1:-1] = self._cr3_write(view)  # before the "maps" heading
        lines.extend(self._regions(roots))
        return lines

    def _cr3_write(self, view: RootsView) -> list[Content]:
        """The latest MOV to CR3 as written (bit 63 asks to keep the PCID's TLB entries)
        and CR3 as it reads back (a CPU with CR4.PCIDE does not store bit 63)."""
        name = self.style("roots--name")
        style = self.style("roots--switched" if view.switched else "roots--live")
        if view.written is None:
            wrote = Content.assemble((pad(_(W_MOV_TO_CR3), NAME), name), (_("none yet"), style))
        else:
            noflush = int(decode_cr3(view.written).noflush)
            wrote = Content.assemble(
                (pad(_(W_MOV_TO_CR3), NAME), name),
                (f"{view.written:016x} " + _(W_BIT63).format(bit=noflush), style),
            )
        bit = int(decode_cr3(view.cr3).noflush)
        reads = Content.assemble(
            (pad(_("CR3 reads"), NAME), name),
            (f"{view.cr3:016x} " + _(W_BIT63).format(bit=bit), style),
        )
        return [wrote, reads]

    def _regions(self, roots: list[RootSummary]) -> list[Content]:
        names: list[str] = []
        by_root: list[dict[str, MappedRegion]] = []
        for root in roots:
            table: dict[str, MappedRegion] = {}
            for region in root.regions:
                # A region spanning several pages is listed once per page; show it once.
                table.setdefault(region.name, region)
            by_root.append(table)
            names.extend(n for n in table if n not in names)
        lines = []
        for name in names:
            parts: list[str | Content | tuple[str, str | Style]] = [
                (" " + pad(tr(name), REGION_NAME - 1), self.style("roots--name"))
            ]
            for table in by_root:
                found = table.get(name)
                if found is not None and found.mapped:
                    text = "✓ " + _page_flags(found.flags)
                    style = self.style("roots--mapped")
                else:
                    text = "✗ " + _("unmapped")
                    style = self.style("roots--unmapped")
                parts.append((pad(text, REGION_COLUMN), style))
            lines.append(Content.assemble(*parts))
        return lines
