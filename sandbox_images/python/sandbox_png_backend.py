"""A matplotlib backend for the sandbox: figures come back as PNG files.

The image selects it (MPLBACKEND=module://sandbox_png_backend). It draws with Agg; `plt.show()`
saves every open figure as figure-<n>.png in the working directory and closes it; figures still
open when the program ends (or, in a session, when the cell ends) are saved the same way unless
the code saved them itself. A request that asks for "*.png" in return_files gets them back.
"""

import atexit
import os

from matplotlib._pylab_helpers import Gcf
from matplotlib.backend_bases import FigureManagerBase, _Backend
from matplotlib.backends.backend_agg import FigureCanvasAgg

_saved = 0


def _next_name():
    """figure-<n>.png, numbered on from the last one saved, never over an existing file."""
    global _saved
    while True:
        _saved += 1
        name = "figure-%d.png" % _saved
        if not os.path.lexists(name):
            return name


class FigureCanvasSandbox(FigureCanvasAgg):
    """Agg, noting whether the figure was saved (by savefig, or shown)."""

    saved = False

    def print_figure(self, *args, **kwargs):
        self.saved = True
        return super().print_figure(*args, **kwargs)


def save_figures(unsaved_only=False):
    """Save open figures (or those never saved) as PNG files in the working directory; close
    them all. The names saved."""
    names = []
    for manager in Gcf.get_all_fig_managers():
        if unsaved_only and getattr(manager.canvas, "saved", False):
            continue
        name = _next_name()
        manager.canvas.figure.savefig(name, format="png")
        names.append(name)
    Gcf.destroy_all()
    return names


@_Backend.export
class _BackendSandboxPNG(_Backend):
    FigureCanvas = FigureCanvasSandbox
    FigureManager = FigureManagerBase

    @staticmethod
    def show(*args, **kwargs):
        save_figures()


atexit.register(save_figures, unsaved_only=True)
