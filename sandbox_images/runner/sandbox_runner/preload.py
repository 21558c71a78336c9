"""What the preloaded template imports before it is forked: the modules of SANDBOX_PRELOAD,
warmed up (warmup.py), and the runner's own module for sessions' cells, which are served from
that template. The bare template is forked before any of this is imported (template.py)."""

import importlib.util
import os
import shutil
import sys
import tempfile

from sandbox_runner.config import SCRATCH_DIRS, WORK_ROOT
from sandbox_runner.warmup import warm_up

SESSION_MODULE = "sandbox_runner.cells"


def preload(modules):
    """Import the modules, as root, and warm them up (see warmup.py). What they write in the
    scratch places goes once they are imported, so that what a child finds there is what it
    made: matplotlib, whose config directory (the image's font cache) is read-only, gets a
    writable copy of it there."""
    before = {path: set(os.listdir(path)) for path in SCRATCH_DIRS if os.path.isdir(path)}
    config = os.environ.get("MPLCONFIGDIR")
    if config and os.path.isdir(config):
        os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="preload-", dir=WORK_ROOT)
        shutil.copytree(config, os.environ["MPLCONFIGDIR"], dirs_exist_ok=True)
    for name in (SESSION_MODULE, *modules):
        try:
            __import__(name)
            warm_up(name)
        except Exception as exc:
            print("preload %s failed: %s" % (name, exc), file=sys.stderr)
    for path, names in before.items():
        for name in set(os.listdir(path)) - names:
            remove(os.path.join(path, name))


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.unlink(path)


def installed(modules):
    """Those of `modules` whose package this interpreter has (an image without numpy preloads
    nothing, and so has no preloaded template)."""
    return [name for name in modules if importlib.util.find_spec(name.partition(".")[0])]
