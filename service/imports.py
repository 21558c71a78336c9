"""Which template a Python snippet is forked from, by a cheap scan of its import statements.

The runner keeps a bare template (nothing preloaded: the cheapest fork) and a preloaded one
(SANDBOX_PRELOAD, numpy, in Python's pool; SANDBOX_SCIENTIFIC_PRELOAD in the scientific pool):
the packages a snippet must import to want one are those the settings name. Any template runs
any code, so the scan only has to be right about speed: an import it misses (`__import__`,
`importlib`, a statement split over lines) is imported by the code itself, as it would be in a
fresh interpreter.
"""

import re
from enum import StrEnum

from service.jobspec import JobSpec
from service.models import Language
from service.runner_protocol import TEMPLATE_BARE, TEMPLATE_PRELOADED

# `import a.b as c, d` and `from a.b import c`: a statement of a line that has "import".
STATEMENT = re.compile(r"[ \t]*(?:from[ \t]+([A-Za-z_]\w*)|import[ \t]+([^#]+))")
NAME = re.compile(r"[ \t]*([A-Za-z_]\w*)")
# Packages a preloaded one imports with another, that code may import by their own names.
IMPORTED_WITH = {"sympy": ("mpmath",), "matplotlib": ("pylab",)}


class Kind(StrEnum):
    BARE = "bare"  # imports nothing that a template preloads
    NUMPY = "numpy"  # what Python's pool preloads (SANDBOX_PRELOAD), nothing of the rest
    SCIENTIFIC = "scientific"


def packages(modules: str) -> frozenset[str]:
    """The top-level packages of a comma-separated list of modules, and those they bring."""
    names = {module.strip().partition(".")[0] for module in modules.split(",") if module.strip()}
    return frozenset(names.union(*(IMPORTED_WITH.get(name, ()) for name in names)))


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


class ImportKinds:
    """A snippet's kind, by the packages each template preloads (the settings)."""

    def __init__(self, preload: str, scientific_preload: str):
        self.numpy = packages(preload)
        self.scientific = packages(scientific_preload) - self.numpy

    def scan(self, code: str) -> tuple[Kind, frozenset[str]]:
        """The snippet's kind, and the packages of the scientific stack it imports (the
        scientific pool's runner writes ahead the pages such code writes:
        sandbox_runner/pages.py)."""
        if "import" not in code:
            return Kind.BARE, frozenset()
        names = imported(code)
        scientific = frozenset(names & self.scientific)
        if scientific:
            return Kind.SCIENTIFIC, scientific
        return (Kind.NUMPY if names & self.numpy else Kind.BARE), scientific

    def of(self, code: str) -> Kind:
        return self.scan(code)[0]

    def of_job(self, spec: JobSpec) -> tuple[Kind, frozenset[str]]:
        """A Python snippet's scan; bare for what the runner execs (another language, a fresh
        interpreter), which preloads nothing it could use."""
        if spec.language != Language.PYTHON or spec.fresh_interpreter:
            return Kind.BARE, frozenset()
        return self.scan(spec.code)


def template_of(kind: Kind) -> str:
    return TEMPLATE_BARE if kind is Kind.BARE else TEMPLATE_PRELOADED
