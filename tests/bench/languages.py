"""P1: per language, the first run of a program (compile + run), a run of the same program again
(its compiled form cached), and a judging of 100 cases, with the compiles counted from the
results' `compile.cached`. On a stack of its own serving every language.

    python -m tests.bench.languages [--cases N] [--json PATH]
"""

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from service.languages import REGISTRY
from tests.bench.stack import LocalStack

SUM = {  # reads two integers, prints their sum
    "python": "a, b = map(int, input().split())\nprint(a + b)",
    "cpp": "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<'\\n';}",
    "c": "#include <stdio.h>\nint main(void){long a,b;scanf(\"%ld %ld\",&a,&b);"
         "printf(\"%ld\\n\",a+b);}",
    "java": "import java.util.*;\npublic class Main { public static void main(String[] x) { "
            "Scanner s = new Scanner(System.in); System.out.println(s.nextLong() + s.nextLong()); "
            "} }",
    "javascript": "const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/)"
                  ".map(Number);\nconsole.log(a + b);",
    "typescript": "const [a, b]: number[] = require('fs').readFileSync(0, 'utf8').trim()"
                  ".split(/\\s+/).map(Number);\nconsole.log(a + b);",
    "go": "package main\nimport \"fmt\"\nfunc main() { var a, b int64; fmt.Scan(&a, &b); "
          "fmt.Println(a + b) }",
    "rust": "use std::io::Read;\nfn main() { let mut s = String::new(); "
            "std::io::stdin().read_to_string(&mut s).unwrap(); let v: Vec<i64> = "
            "s.split_whitespace().map(|x| x.parse().unwrap()).collect(); "
            "println!(\"{}\", v[0] + v[1]); }",
    "bash": "read a b; echo $((a + b))",
}
CACHED_RUNS = 5


def unique(language: str, code: str) -> str:
    """A program nothing has compiled yet (a comment makes it new)."""
    comment = "#" if language in ("python", "bash") else "//"
    return f"{code}\n{comment} {uuid.uuid4().hex}\n"


def timed_run(client: httpx.Client, language: str, code: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    result = client.post("/v1/run", json={"code": code, "language": language, "stdin": "2 40",
                                          "compile_timeout": 120}).json()
    return (time.perf_counter() - started) * 1000, result


def judging(client: httpx.Client, language: str, code: str, cases: int) -> dict[str, Any]:
    body = {"code": code, "language": language, "compile_timeout": 120,
            "cases": [{"stdin": f"{i} {i}", "expected_stdout": str(2 * i)} for i in range(cases)]}
    started = time.perf_counter()
    answer = client.post("/v1/judge", json=body).json()
    elapsed = (time.perf_counter() - started) * 1000
    compiled = [c["result"].get("compile") for c in answer["cases"] if c["result"]]
    return {"ms": round(elapsed), "passed": answer["passed"], "total": answer["total"],
            "compiles": sum(1 for c in compiled if c and not c["cached"])}


def measure_language(client: httpx.Client, language: str, cases: int) -> dict[str, Any]:
    code = unique(language, SUM[language])
    first_ms, first = timed_run(client, language, code)
    again = [timed_run(client, language, code) for _ in range(CACHED_RUNS)]
    compile_block = first.get("compile") or {}
    return {
        "first_ms": round(first_ms), "first_ok": first["stdout"] == "42\n",
        "compile_ms": compile_block.get("duration_ms"),
        "cached_p50_ms": round(statistics.median(ms for ms, _ in again)),
        "cached_compiles": sum(1 for _, r in again if r.get("compile")
                               and not r["compile"]["cached"]),
        "judge_100": judging(client, language, unique(language, SUM[language]), cases),
    }


def measure(cases: int = 100) -> dict[str, Any]:
    names = [spec.name for spec in REGISTRY if spec.name in SUM]
    env = {"SANDBOX_LANGUAGES": ",".join(names)}
    with LocalStack(workers=1, pool_size=4, env=env) as stack, \
            httpx.Client(base_url=stack.base_url, timeout=600) as client:
        for name in names:  # every image's warm container answers before anything is timed
            timed_run(client, name, SUM[name])
        return {name: measure_language(client, name, cases) for name in names}


def table(figures: dict[str, Any]) -> str:
    rows = ["| language | first run (compile + run) | of which compile | cached run p50 | "
            "judging 100 cases | compiles in the judging |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name, f in figures.items():
        judge = f["judge_100"]
        compile_ms = "—" if f["compile_ms"] is None else f"{round(f['compile_ms'])} ms"
        rows.append(f"| {name} | {f['first_ms']} ms | {compile_ms} | {f['cached_p50_ms']} ms | "
                    f"{judge['ms']} ms ({judge['passed']}/{judge['total']} passed) | "
                    f"{judge['compiles']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.languages",
                                     description=__doc__)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--json", type=Path, default=Path(".run/bench-languages.json"))
    args = parser.parse_args(argv)
    print("measuring P1; progress on stderr", file=sys.stderr)
    figures = measure(args.cases)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
    print(table(figures))


if __name__ == "__main__":
    main()
