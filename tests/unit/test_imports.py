"""The scan of a snippet's imports that picks its template (service/imports.py)."""

import pytest

from service.imports import ImportKinds, Kind, imported, packages, template_of
from service.runner_protocol import TEMPLATE_BARE, TEMPLATE_PRELOADED
from service.settings import Settings

KINDS = ImportKinds(Settings().preload, Settings().scientific_preload)  # the defaults


@pytest.mark.parametrize(("code", "names"), [
    ("print(1)", set()),
    ("import numpy as np; print(np.arange(3))", {"numpy"}),
    ("import os, numpy.linalg as la,  sys", {"os", "numpy", "sys"}),
    ("from scipy.optimize import brentq", {"scipy"}),
    ("def f():\n    import sympy\n    return sympy", {"sympy"}),
    ("x = 1; import pandas", {"pandas"}),
    ("import networkx  # a graph", {"networkx"}),
    ("from . import sibling", set()),
    ("sympy = __import__('sympy')", set()),
    ("print('we import nothing')", set()),
])
def test_import_statements_are_found(code: str, names: set[str]) -> None:
    assert imported(code) == names


@pytest.mark.parametrize(("code", "kind"), [
    ("print(1)", Kind.BARE),
    ("import math, json", Kind.BARE),
    ("import numpy as np", Kind.NUMPY),
    ("import numpy as np\nimport sympy", Kind.SCIENTIFIC),
    ("from z3 import Int", Kind.SCIENTIFIC),
    ("from ortools.sat.python import cp_model", Kind.SCIENTIFIC),
    ("import matplotlib.pyplot as plt", Kind.SCIENTIFIC),
    ("importlib.import_module('pandas')", Kind.BARE),  # dynamic: imported by the code itself
])
def test_kind_follows_the_heaviest_import(code: str, kind: Kind) -> None:
    assert KINDS.of(code) is kind


def test_the_scan_names_the_scientific_packages_the_code_imports() -> None:
    """They go with the run (its `imports`): the runner's next child writes ahead the pages
    such code writes."""
    assert KINDS.scan("import numpy as np, z3\nfrom sympy import Symbol") == \
        (Kind.SCIENTIFIC, {"z3", "sympy"})
    assert KINDS.scan("import numpy as np") == (Kind.NUMPY, frozenset())
    assert KINDS.scan("print(1)") == (Kind.BARE, frozenset())


def test_the_kinds_follow_what_the_templates_preload() -> None:
    assert packages("numpy, scipy.optimize,sympy") == {"numpy", "scipy", "sympy", "mpmath"}
    custom = ImportKinds("numpy,requests", "numpy,sympy")
    assert custom.of("import requests") is Kind.NUMPY
    assert custom.of("from mpmath import mp") is Kind.SCIENTIFIC
    assert custom.of("import pandas") is Kind.BARE
    assert custom.of("import numpy") is Kind.NUMPY  # preloaded by both: Python's pool


def test_only_bare_code_is_forked_from_the_bare_template() -> None:
    assert template_of(Kind.BARE) == TEMPLATE_BARE
    assert template_of(Kind.NUMPY) == TEMPLATE_PRELOADED
    assert template_of(Kind.SCIENTIFIC) == TEMPLATE_PRELOADED
