"""What a preloaded template runs once its modules are imported, so that its children do not each
pay the first use of the module: caches filled and lazily imported parts loaded on problems of
no caller's. Keyed by the preloaded module; nothing here may leave a thread running (a forked
child has only the thread that forked it), so the solvers are built, never run in parallel."""

WARMUPS = {
    "sympy": ("import sympy\n"
              "x = sympy.Symbol('x')\n"
              "sympy.solve(x**2 - 3*x + 2, x)\n"
              "sympy.simplify(sympy.sin(x)**2 + sympy.cos(x)**2)\n"
              "sympy.integrate(x * sympy.exp(x), x)\n"),
    "z3": ("import z3\n"
           "a, b = z3.Ints('a b')\n"
           "s = z3.Solver()\n"
           "s.add(a + b == 3, a - b == 1)\n"
           "s.check()\n"
           "s.model()\n"),
    "pandas": ("import pandas\n"
               "frame = pandas.DataFrame({'a': [1, 2], 'b': [3.0, 4.0]})\n"
               "frame.groupby('a').sum()\n"
               "str(frame.describe())\n"),
    "networkx": ("import networkx\n"
                 "networkx.shortest_path_length(networkx.path_graph(3), 0, 2)\n"),
    "ortools.sat.python.cp_model": ("from ortools.sat.python import cp_model\n"
                                    "model = cp_model.CpModel()\n"
                                    "v = model.NewIntVar(0, 3, 'v')\n"
                                    "model.Add(2 * v == 4)\n"),
}


def warm_up(module):
    if module in WARMUPS:
        exec(WARMUPS[module], {})
