"""The libraries reasoning models reach for, as the sandbox image ships them, used for real."""

import httpx
import pytest

# Each snippet solves a small problem with one library and prints an answer only it gives.
SNIPPETS = {
    "sympy": ("import sympy as sp\nx = sp.symbols('x')\n"
              "print(sp.solve(x**2 - 5*x + 6, x))", "[2, 3]\n"),
    "scipy": ("from scipy.optimize import brentq\n"
              "print(round(brentq(lambda x: x**3 - 8, 0, 5), 6))", "2.0\n"),
    "pandas": ("import pandas as pd\n"
               "print(pd.DataFrame({'a': [1, 2, 3]})['a'].sum())", "6\n"),
    "networkx": ("import networkx as nx\n"
                 "print(nx.shortest_path_length(nx.path_graph(5), 0, 4))", "4\n"),
    "z3": ("import z3\nx, y = z3.Ints('x y')\ns = z3.Solver()\n"
           "s.add(x + y == 10, x - y == 4)\ns.check()\nm = s.model()\nprint(m[x], m[y])", "7 3\n"),
    "ortools": ("from ortools.sat.python import cp_model\nm = cp_model.CpModel()\n"
                "x = m.NewIntVar(0, 10, 'x')\nm.Add(3 * x == 21)\n"
                "s = cp_model.CpSolver()\ns.parameters.num_workers = 1\ns.Solve(m)\n"
                "print(s.Value(x))", "7\n"),
    "pulp": ("import pulp\np = pulp.LpProblem('p', pulp.LpMaximize)\n"
             "x = pulp.LpVariable('x', 0, 4)\np += x\np.solve(pulp.PULP_CBC_CMD(msg=0))\n"
             "print(pulp.value(x))", "4.0\n"),
    "cvxpy": ("import cvxpy as cp\nx = cp.Variable()\n"
              "cp.Problem(cp.Minimize((x - 3) ** 2)).solve()\nprint(round(float(x.value), 3))",
              "3.0\n"),
}


@pytest.mark.parametrize("library", sorted(SNIPPETS))
def test_library_solves(client: httpx.Client, library: str) -> None:
    code, expected = SNIPPETS[library]
    response = client.post("/v1/run", json={"code": code, "timeout": 60})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["outcome"] == "ok", result["stderr"]
    assert result["stdout"] == expected
