"""Base for the state panels: drawn line by line, repainting only the lines that changed.

A step changes a handful of values; redrawing whole panels for it would cost most of a
frame.  A `LinePanel` rebuilds its lines as Content when its data changes, compares them
with the previous ones and refreshes just the rows that differ.  The line count (the
scrollable height) only changes when the shape of the data does, because changing it costs
a layout pass of the whole screen.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from textual.content import Content
from textual.events import Resize
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.style import Style


class LinePanel(ScrollView, can_focus=True):
    """Subclasses implement `build(width)`; call `rebuild()` whenever their data changes.

    Focusable, so that a panel whose lines do not fit can be scrolled from the keyboard
    (tab to it, then the arrow and page keys) as well as with the mouse wheel.
    """

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._lines: list[Content] = []
        self._strips: dict[int, Strip] = {}
        self._strip_key: tuple[int, int] = (0, 0)
        self.min_lines = 0
        """Keep at least this many rows so the height does not change from step to step."""
        self._styles: dict[tuple[str, ...], Style] = {}
        self._follow: int | None = None
        self._built_width = 0

    @property
    def lines(self) -> list[Content]:
        """The current lines, for tests and for neighbours that summarise them."""
        return self._lines

    @property
    def plain(self) -> str:
        return "\n".join(line.plain for line in self._lines)

    def build(self, width: int) -> list[Content]:
        """The panel's lines for a content area ``width`` cells wide."""
        raise NotImplementedError

    def style(self, *component_classes: str) -> Style:
        """`get_visual_style`, remembered for the duration of one rebuild.

        A build asks for the same few styles dozens of times, and each lookup walks the
        ancestors to check for a disabled one.
        """
        style = self._styles.get(component_classes)
        if style is None:
            style = self._styles[component_classes] = self.get_visual_style(*component_classes)
        return style

    def rebuild(self) -> None:
        """Recompute the lines and refresh those that changed."""
        width = self.scrollable_content_region.width or self.size.width
        self._built_width = width
        self._styles.clear()
        new = self.build(width)
        old = self._lines
        self._lines = new
        # Never smaller than the visible area: while the lines fit, the scrollable size stays
        # put however their number and length change underneath.
        region = self.scrollable_content_region
        widest = max((line.cell_length for line in new), default=0)
        virtual = Size(max(widest, region.width), max(len(new), self.min_lines, region.height))
        if virtual != self.virtual_size:
            self.virtual_size = virtual
            self._strips.clear()
            self.refresh()
            return
        scroll_y = round(self.scroll_y)
        for y in range(max(len(old), len(new))):
            before = old[y] if y < len(old) else None
            after = new[y] if y < len(new) else None
            if before is None or after is None or not before.is_same(after):
                self._strips.pop(y, None)
                if scroll_y <= y < scroll_y + self.size.height:
                    self.refresh_line(y)

    def on_resize(self, event: Resize) -> None:
        # Wrapped lines depend on the width: build them again for the new one.
        self._strips.clear()
        self.rebuild()
        self.refresh()
        if self._follow is not None:
            self.keep_in_view(self._follow)

    def _rewrap(self) -> None:
        self._strips.clear()
        self.rebuild()
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()
        if self.is_mounted:
            self.rebuild()

    def keep_in_view(self, row: int) -> None:
        """Scroll, if ``row`` is out of view, so that it sits two thirds of the way down:
        the rows above it (what the last steps pushed) stay visible as context."""
        self._follow = row
        height = self.scrollable_content_region.height
        if not height:
            return  # hidden (another tab): done when shown, see on_resize
        top = round(self.scroll_y)
        if top <= row < top + height:
            return
        self.scroll_to(y=max(0, row - (2 * height) // 3), animate=False, immediate=True)

    def set_title(self, title: str) -> None:
        """Set the border title; assigning it repaints the panel even when unchanged."""
        if self.border_title != title:
            self.border_title = title

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        if width and width != self._built_width:
            # Built while hidden or before the first layout (no Resize came since): wrap the
            # lines again for the width they are drawn at.
            self._built_width = width
            self.call_later(self._rewrap)
        if (scroll_x, width) != self._strip_key:
            self._strips.clear()
            self._strip_key = (scroll_x, width)
        index = scroll_y + y
        strip = self._strips.get(index)
        if strip is None:
            base = self.get_visual_style()
            if index < len(self._lines):
                content = self._lines[index]
                strip = Strip(content.render_segments(base), content.cell_length)
            else:
                strip = Strip([])
            strip = strip.extend_cell_length(scroll_x + width, base.rich_style).crop(
                scroll_x, scroll_x + width
            )
            self._strips[index] = strip
        return strip


V = TypeVar("V")


class ViewPanel(LinePanel, Generic[V]):
    """A panel that draws one immutable view the screen pushes down (attributes down).

    The screen assigns ``panel.view``; the panel rebuilds its lines from it.  A panel with
    more to do when its view changes (a title, a tooltip, the scroll position) overrides
    :meth:`view_changed`, which runs before the rebuild.
    """

    view: reactive[V | None] = reactive(None, repaint=False)

    def view_changed(self, view: V | None) -> None:
        """What changes besides the lines when the view does (nothing by default)."""

    def watch_view(self, view: V | None) -> None:
        self.view_changed(view)
        self.rebuild()
