"""Which template a Python snippet is forked from, by a cheap scan of its import statements.

The runner keeps a bare template (nothing preloaded: the cheapest fork) and a preloaded one
(numpy in Python's pool; the whole scientific stack in the scientific pool). Any template runs
any code, so the scan only has to be right about speed: an import it misses (`__import__`,
`importlib`, a statement split over lines) is imported by the code itself, as it would be in a
fresh interpreter.
"""

import re
from enum import StrEnum

from service.jobspec import JobSpec
from service.models import Language

# `import a.b as c, d` and `from a.b import c`: a statement of a line that has "import".
STATEMENT = re.compile(r"[ \t]*(?:from[ \t]+([A-Za-z_]\w*)|import[ \t]+([^#]+))")
NAME = re.compile(r"[ \t]*([A-Za-z_]\w*)")
NUMPY = frozenset({"numpy"})
# What the scientific template preloads, by top-level package (see Settings.scientific_preload).
SCIENTIFIC = frozenset({"scipy", "sympy", "mpmath", "pandas", "networkx", "z3", "ortools",
                        "pulp", "cvxpy", "matplotlib", "pylab"})


class Kind(StrEnum):
    BARE = "bare"  # imports nothing that a template preloads
    NUMPY = "numpy"
    SCIENTIFIC = "scientific"


# The runner's templates (a request's `template`; see sandbox_runner/template.py).
TEMPLATE_BARE = "bare"
TEMPLATE_PRELOADED = "preloaded"


def imported(code: str) -> set[str]:
    """The top-level packages the code's import statements name."""
    names: set[str] = set()
    for line in lines_with(code, "import"):
        for statement in line.split(";"):
            match = STATEMENT.match(statement)
            if match is None:
                continue
            if match.group(1):
                names.add(match.group(1))
                continue
            for item in match.group(2).split(","):
                name = NAME.match(item)
                if name:
                    names.add(name.group(1))
    return names


def lines_with(code: str, word: str) -> list[str]:
    """The lines of `code` that contain `word` (found by str.find: a regex tried at every
    position of a long snippet costs ten times more)."""
    lines = []
    at = code.find(word)
    while at != -1:
        end = code.find("\n", at)
        end = len(code) if end == -1 else end
        lines.append(code[code.rfind("\n", 0, at) + 1:end])
        at = code.find(word, end)
    return lines


def kind_of(code: str) -> Kind:
    if "import" not in code:
        return Kind.BARE
    names = imported(code)
    if names & SCIENTIFIC:
        return Kind.SCIENTIFIC
    return Kind.NUMPY if names & NUMPY else Kind.BARE


def template_of(kind: Kind) -> str:
    return TEMPLATE_BARE if kind is Kind.BARE else TEMPLATE_PRELOADED


def kind_of_job(spec: JobSpec) -> Kind:
    """A Python snippet's kind; bare for what the runner execs (another language, a fresh
    interpreter), which preloads nothing it could use."""
    if spec.language != Language.PYTHON or spec.fresh_interpreter:
        return Kind.BARE
    return kind_of(spec.code)
