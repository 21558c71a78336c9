"""Templates by import set, through HTTP -> Redis -> worker -> container: code is forked from the
bare template, numpy's, or (in the scientific pool) the one that imported the scientific stack,
as its import statements say; any template runs any code."""

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import Service, run

# One container in each pool, so that consecutive runs share their container.
POOLS = {"SANDBOX_POOL_SIZE": "1", "SANDBOX_SCIENTIFIC_POOL_SIZE": "1",
         "SANDBOX_SCIENTIFIC_POOL_MAX": "1", "SANDBOX_SESSION_WARM": "0"}
LOADED = "import sys\nprint(sorted(m for m in ('numpy', 'pandas', 'sympy') if m in sys.modules))\n"


@pytest.fixture(scope="module")
def client(redis_url: str, docker_engine: None) -> Iterator[httpx.Client]:
    service = Service(redis_url, POOLS).start(workers=1, wait_idle=1)
    try:
        service.wait_ready(min_idle=2, timeout=300)  # the scientific container imports its stack
        with httpx.Client(base_url=service.base_url, timeout=120) as c:
            yield c
    finally:
        service.stop()


def stdout_of(client: httpx.Client, code: str) -> str:
    """The stdout of a run that must end ok."""
    result = run(client, code, timeout=60)
    assert result["outcome"] == "ok", result["stderr"]
    return result["stdout"]


@pytest.mark.parametrize(("code", "expected"), [
    ("import sympy as sp\nx = sp.symbols('x')\nprint(sp.solve(x**2 - 5*x + 6, x))", "[2, 3]\n"),
    ("import pandas as pd\nprint(pd.DataFrame({'a': [1, 2, 3]})['a'].sum())", "6\n"),
    ("from z3 import Ints, Solver\nx, y = Ints('x y')\ns = Solver()\n"
     "s.add(x + y == 10, x - y == 4)\ns.check()\nprint(s.model()[x])", "7\n"),
])
def test_scientific_snippets_answer_right(client: httpx.Client, code: str,
                                          expected: str) -> None:
    assert stdout_of(client, code) == expected


def test_code_is_forked_from_the_template_its_imports_name(client: httpx.Client) -> None:
    assert stdout_of(client, LOADED) == "[]\n"  # bare: nothing preloaded
    assert stdout_of(client, "import numpy\n" + LOADED) == "['numpy']\n"
    assert stdout_of(client, "import sympy\n" + LOADED) == "['numpy', 'pandas', 'sympy']\n"


def test_the_bare_template_holds_no_module_of_sessions_or_preloading(
        client: httpx.Client) -> None:
    """Each fork and exit costs more the more memory its template holds: the bare one is forked
    before the runner imports what sessions and preloading need; the preloaded one, which
    sessions are forked from, holds the sessions' module."""
    held = ("import sys\nprint(sorted(m for m in ('sandbox_runner.cells', 'sandbox_runner.preload',"
            " 'inspect', 'hashlib', 'subprocess', 'shutil') if m in sys.modules))\n")
    assert stdout_of(client, held) == "[]\n"
    assert "'sandbox_runner.cells'" in stdout_of(client, "import numpy\n" + held)


def test_a_dynamic_import_works_on_the_bare_template(client: httpx.Client) -> None:
    code = LOADED + "sympy = __import__('sympy')\nprint(sympy.sqrt(16), 'sympy' in sys.modules)"
    assert stdout_of(client, code) == "[]\n4 True\n"


def test_one_container_switches_between_templates(client: httpx.Client) -> None:
    """Python's pool has one container: each run whose template differs from the last one's
    has its waiting child replaced, and every answer is still right."""
    for i in range(3):
        assert stdout_of(client, f"import numpy as np\nprint(np.arange({i + 2}).sum())") == \
            f"{sum(range(i + 2))}\n"
        assert stdout_of(client, f"print({i} * 7)") == f"{i * 7}\n"


def test_state_does_not_leak_between_runs_on_the_scientific_template(
        client: httpx.Client) -> None:
    """The scientific pool has one container: a run that changes the preloaded modules, their
    options and the files leaves nothing of it to the next."""
    assert stdout_of(client, (
        "import sympy, pandas, networkx\n"
        "sympy.LEAKED = 1\npandas.set_option('display.max_rows', 3)\n"
        "networkx.LEAKED = sympy.Symbol('secret')\n"
        "open('/tmp/leak', 'w').write('secret')\nprint('set')")) == "set\n"
    assert stdout_of(client, (
        "import os, sympy, pandas, networkx\n"
        "print(hasattr(sympy, 'LEAKED'), hasattr(networkx, 'LEAKED'),"
        " pandas.get_option('display.max_rows'), os.path.exists('/tmp/leak'))")) == \
        "False False 60 False\n"


# The processes of the sandbox uid other than the run's own: (whether the run is its parent,
# whether it is a process rather than a thread), then whether the code's wait() finds a child.
OTHERS = (
    "import os\n"
    "me = os.getpid()\n"
    "def status(pid):\n"
    "    try:\n"
    "        text = open(f'/proc/{pid}/status').read()\n"
    "    except OSError:\n"
    "        return None\n"
    "    return dict(line.split(':\\t', 1) for line in text.splitlines() if ':\\t' in line)\n"
    "found = [s for s in map(status, filter(str.isdigit, os.listdir('/proc')))\n"
    "         if s and s['Uid'].split()[0] == str(os.getuid()) and s['Pid'] != str(me)]\n"
    "print(sorted((s['PPid'] == str(me), s['Tgid'] == s['Pid']) for s in found))\n"
    "try:\n"
    "    os.wait()\n"
    "except ChildProcessError:\n"
    "    print('no child to wait for')\n")


def test_a_scientific_child_leaves_the_teardown_of_its_memory_to_a_holder(
        client: httpx.Client) -> None:
    """A child of the scientific template shares its memory with a holder process, so that its
    exit status is out before the kernel has torn that memory down (_native.hold_memory): the
    holder is the run's only other process, the code's wait() does not find it, and nothing of
    it is left for the next run. The children of numpy's template and of the bare one, quick to
    tear down, have none."""
    for _ in range(2):
        assert stdout_of(client, "import sympy\n" + OTHERS) == \
            "[(True, True)]\nno child to wait for\n"
        assert stdout_of(client, "import numpy\n" + OTHERS) == "[]\nno child to wait for\n"
        assert stdout_of(client, OTHERS) == "[]\nno child to wait for\n"


WAITING_S = 1.0  # long enough for a waiting child to write ahead all it would
# The page faults of z3's work in a child (its first assertion on a new solver writes thousands of
# pages of the heap the template's warm-up left), with the solver's answer.
Z3_FAULTS = ("import resource, z3\n"
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
             "x, y = z3.Ints('x y')\ns = z3.Solver()\ns.add(x + y == 10, x - y == 4)\n"
             "print(s.check(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")


def test_the_next_child_writes_ahead_the_pages_of_the_last_runs_kind_of_code(
        client: httpx.Client) -> None:
    """The scientific pool has one container: after a run that imported z3, its next child
    writes ahead, while it waits, the pages z3's code writes (found by the runner's probe,
    pages.py), and then takes a fraction of the page faults it takes after a run that imported
    sympy. (Each run comes a while after the last: a child writes ahead only until its request
    is there.)"""
    assert stdout_of(client, "import sympy\nprint(1)") == "1\n"
    time.sleep(WAITING_S)
    verdict, after_sympy = stdout_of(client, Z3_FAULTS).split()
    assert verdict == "sat"
    time.sleep(WAITING_S)
    verdict, after_z3 = stdout_of(client, Z3_FAULTS).split()
    assert verdict == "sat"
    assert int(after_z3) * 3 < int(after_sympy)
