"""Every language through HTTP → Redis → worker → container: stdin to stdout, a runtime error, a
timeout, a memory bomb, output past the cap; for compiled ones a compile error and a compile
timeout; compiling once for a judging of many cases."""

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sandbox_fusion import RunCodeRequest, RunStatus, run_code

from service.languages import REGISTRY
from tests.support import Service, sandbox_uid_processes

OTHERS = [spec.name for spec in REGISTRY if spec.image != "python"]
COMPILED = [spec.name for spec in REGISTRY if spec.compile]

ECHO = {
    "c": '#include <stdio.h>\nint main(void){int c;while((c=getchar())!=EOF)putchar(c);return 0;}',
    "cpp": "#include <iostream>\n#include <string>\nint main(){std::string s;"
           "while(std::getline(std::cin,s))std::cout<<s<<'\\n';}",
    "java": "import java.io.*;\npublic class Echo {\n  public static void main(String[] a) "
            "throws IOException {\n    BufferedReader r = new BufferedReader(new "
            "InputStreamReader(System.in));\n    String s;\n    while ((s = r.readLine()) != null)"
            " System.out.println(s);\n  }\n}\n",
    "javascript": "process.stdout.write(require('fs').readFileSync(0, 'utf8'));",
    "typescript": "const fs = require('fs');\nconst text: string = fs.readFileSync(0, 'utf8');\n"
                  "process.stdout.write(text);",
    "go": 'package main\nimport ("io"; "os")\nfunc main() { io.Copy(os.Stdout, os.Stdin) }',
    "rust": "use std::io;\nfn main() { io::copy(&mut io::stdin(), &mut io::stdout()).unwrap(); }",
    "bash": "cat",
}
FAIL = {  # (program, exit code)
    "c": ("#include <stdlib.h>\nint main(void){exit(3);}", 3),
    "cpp": ("#include <cstdlib>\nint main(){std::exit(3);}", 3),
    "java": ('public class Main { public static void main(String[] a) { '
             'throw new RuntimeException("boom"); } }', 1),
    "javascript": ('throw new Error("boom");', 1),
    "typescript": ('const why: string = "boom";\nthrow new Error(why);', 1),
    "go": ('package main\nfunc main() { panic("boom") }', 2),
    "rust": ('fn main() { panic!("boom"); }', 101),
    "bash": ("echo boom >&2; exit 3", 3),
}
LOOP = {
    "c": "int main(void){for(;;);}",
    "cpp": "int main(){for(;;);}",
    "java": "public class Main { public static void main(String[] a) { while (true) {} } }",
    "javascript": "for (;;) {}",
    "typescript": "let n: number = 0;\nfor (;;) { n++; }",
    "go": "package main\nfunc main() { for {} }",
    "rust": "fn main() { loop {} }",
    "bash": "sleep 1000 & while :; do :; done",
}
BOMB = {
    "c": "#include <stdlib.h>\n#include <string.h>\nint main(void){for(;;){char*p=malloc(1<<24);"
         "if(!p)return 1;memset(p,1,1<<24);}}",
    "cpp": "#include <vector>\nint main(){std::vector<std::vector<char>> v;"
           "for(;;)v.emplace_back(1<<24,1);}",
    "java": "import java.util.*;\npublic class Main { public static void main(String[] a) { "
            "List<long[]> l = new ArrayList<>(); while (true) l.add(new long[1 << 21]); } }",
    "javascript": "const a = []; for (;;) a.push(Buffer.alloc(1 << 24, 1));",
    "typescript": "const a: any[] = [];\nfor (;;) a.push(Buffer.alloc(1 << 24, 1));",
    "go": "package main\nfunc main() { var s [][]byte\n for { b := make([]byte, 1<<24)\n"
          " for i := range b { b[i] = 1 }\n s = append(s, b) } }",
    "rust": "fn main() { let mut v = Vec::new(); loop { v.push(vec![1u8; 1 << 24]); } }",
    "bash": "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done",
}
FLOOD = {
    "c": '#include <stdio.h>\nint main(void){for(;;)puts("yyyyyyyyyyyyyyyy");}',
    "cpp": '#include <cstdio>\nint main(){for(;;)std::puts("yyyyyyyyyyyyyyyy");}',
    "java": 'public class Main { public static void main(String[] a) { '
            'while (true) System.out.println("yyyyyyyyyyyyyyyy"); } }',
    "javascript": "const s = 'y'.repeat(1 << 16) + '\\n';\nfunction w() { "
                  "process.stdout.write(s, w); }\nw();",
    "typescript": "const s: string = 'y'.repeat(1 << 16) + '\\n';\nfunction w(): void { "
                  "process.stdout.write(s, w); }\nw();",
    "go": 'package main\nimport "fmt"\nfunc main() { for { fmt.Println("yyyyyyyyyyyyyyyy") } }',
    "rust": 'fn main() { loop { println!("yyyyyyyyyyyyyyyy"); } }',
    "bash": "while :; do echo yyyyyyyyyyyyyyyy; done",
}
BROKEN = {
    "c": "int main(void){ return x; }",
    "cpp": "int main(){ return x; }",
    "java": "public class Main { public static void main(String[] a) { int x = ; } }",
    "typescript": "let x: number = ;",
    "go": "package main\nfunc main() { return x }",
    "rust": "fn main() { let x: u32 = \"a\"; }",
}


@pytest.fixture(scope="module")
def lang_service(redis_url: str, docker_engine: None) -> Iterator[Service]:
    """One worker serving every language (a warm container per image, more on demand)."""
    svc = Service(redis_url, {"SANDBOX_LANGUAGES": ",".join(spec.name for spec in REGISTRY),
                              "SANDBOX_POOL_SIZE": "4"})
    svc.start(workers=1, wait_idle=4 + len({spec.image for spec in REGISTRY}) - 1)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def languages(lang_service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=lang_service.base_url, timeout=180) as client:
        yield client


def run(client: httpx.Client, language: str, code: str, **fields) -> dict:
    fields.setdefault("compile_timeout", 120)  # the busy test host is not the program's fault
    response = client.post("/v1/run", json={"code": code, "language": language, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def fresh(code: str, language: str) -> str:
    """The program made unique (a comment), so that nothing of it is in the compile cache."""
    comment = "#" if language == "bash" else "//"
    return f"{code}\n{comment} {uuid.uuid4().hex}\n"


@pytest.mark.parametrize("language", OTHERS)
def test_stdin_to_stdout(languages: httpx.Client, language: str) -> None:
    result = run(languages, language, fresh(ECHO[language], language), stdin="héllo\nworld\n")
    assert result["outcome"] == "ok", result
    assert result["stdout"] == "héllo\nworld\n"
    assert result["exit_code"] == 0
    if language in COMPILED:
        assert result["compile"]["exit_code"] == 0
        assert result["compile"]["cached"] is False
        assert result["compile"]["duration_ms"] > 0
    else:
        assert "compile" not in result


@pytest.mark.parametrize("language", OTHERS)
def test_runtime_error(languages: httpx.Client, language: str) -> None:
    code, exit_code = FAIL[language]
    result = run(languages, language, code)
    assert result["outcome"] == "error", result
    assert result["exit_code"] == exit_code
    assert "boom" in result["stderr"] or language in ("c", "cpp")


@pytest.mark.parametrize("language", OTHERS)
def test_timeout_leaves_nothing_running(lang_service: Service, languages: httpx.Client,
                                        language: str) -> None:
    result = run(languages, language, LOOP[language], timeout=1)
    assert result["outcome"] == "timeout", result
    deadline = time.monotonic() + 15
    while sandbox_uid_processes(lang_service.prefix) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sandbox_uid_processes(lang_service.prefix) == []


@pytest.mark.parametrize("language", OTHERS)
def test_memory_bomb(languages: httpx.Client, language: str) -> None:
    result = run(languages, language, BOMB[language], memory_mb=128, timeout=20)
    assert result["outcome"] == "memory_limit", result
    assert run(languages, language, ECHO[language], stdin="after\n")["stdout"] == "after\n"


@pytest.mark.parametrize("language", OTHERS)
def test_output_past_the_cap(languages: httpx.Client, language: str) -> None:
    result = run(languages, language, FLOOD[language], max_output_bytes=1000, timeout=20)
    assert result["outcome"] == "output_limit", result
    assert result["stdout_truncated"] is True
    assert len(result["stdout"]) == 1000


@pytest.mark.parametrize("language", COMPILED)
def test_compile_error(languages: httpx.Client, language: str) -> None:
    result = run(languages, language, fresh(BROKEN[language], language))
    assert result["outcome"] == "compile_error", result
    assert result["compile"]["exit_code"] not in (0, None)
    assert result["compile"]["stderr"] or result["compile"]["stdout"]
    assert result["stdout"] == "" and result["exit_code"] is None
    assert result["message"].startswith("compilation failed")


@pytest.mark.parametrize("language", COMPILED)
def test_compile_timeout(languages: httpx.Client, language: str) -> None:
    result = run(languages, language, fresh(ECHO[language], language), compile_timeout=0.01)
    assert result["outcome"] == "compile_error", result
    assert result["message"] == "compile timed out after 0.01 s"
    assert result["compile"]["exit_code"] is None


def test_aliases(languages: httpx.Client) -> None:
    for alias, code in (("c++17", ECHO["cpp"]), ("nodejs", ECHO["javascript"]),
                        ("ts", ECHO["typescript"]), ("golang", ECHO["go"]), ("sh", "cat"),
                        ("rs", ECHO["rust"]), ("C++20", ECHO["cpp"])):
        assert run(languages, alias, code, stdin="x\n")["stdout"] == "x\n", alias


def test_cached_program_is_not_compiled_again(languages: httpx.Client) -> None:
    code = fresh(ECHO["cpp"], "cpp")
    first = run(languages, "cpp", code, stdin="1\n")
    second = run(languages, "cpp", code, stdin="2\n")
    assert (first["compile"]["cached"], second["compile"]["cached"]) == (False, True)
    assert second["stdout"] == "2\n"
    other_flags = run(languages, "c", code.replace("<iostream>", "<stdio.h>"), stdin="3\n")
    assert other_flags["outcome"] == "compile_error"  # another language: another key


def test_judging_compiles_once(languages: httpx.Client) -> None:
    code = fresh("#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<'\\n';}",
                 "cpp")
    cases = [{"stdin": f"{i} {i * 7}", "expected_stdout": str(i * 8)} for i in range(30)]
    cases[29]["expected_stdout"] = "wrong"
    response = languages.post("/v1/judge", json={"code": code, "language": "c++17",
                                                 "cases": cases})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["passed"] == 29
    assert [c["verdict"] for c in body["cases"]] == ["passed"] * 29 + ["wrong_answer"]
    compiled = [c["result"]["compile"]["cached"] for c in body["cases"]].count(False)
    assert compiled == 1
    again = languages.post("/v1/judge", json={"code": code, "language": "cpp",
                                              "cases": cases[:5]}).json()
    assert [c["result"]["compile"]["cached"] for c in again["cases"]] == [True] * 5


def test_judging_a_program_that_does_not_compile(languages: httpx.Client) -> None:
    cases = [{"stdin": "1", "expected_stdout": "1"}] * 6
    body = languages.post("/v1/judge", json={"code": fresh(BROKEN["java"], "java"),
                                             "language": "java", "cases": cases}).json()
    assert [c["verdict"] for c in body["cases"]] == ["compile_error"] * 6
    assert [c["result"]["compile"]["cached"] for c in body["cases"]].count(False) == 1


def test_concurrent_languages(languages: httpx.Client) -> None:
    """A burst of every language at once: each answered, Python among them."""
    jobs = [(name, ECHO.get(name, "import sys; print(sys.stdin.read(), end='')"))
            for name in [spec.name for spec in REGISTRY if spec.name != "pytest"] * 2]
    with ThreadPoolExecutor(len(jobs)) as threads:
        results = list(threads.map(lambda job: run(languages, job[0], job[1], stdin="z\n"), jobs))
    assert [r["stdout"] for r in results] == ["z\n"] * len(jobs), [
        (r["outcome"], r["message"]) for r in results]


def test_assertions_are_python_only(languages: httpx.Client) -> None:
    response = languages.post("/v1/judge", json={"code": "int main(){}", "language": "cpp",
                                                 "cases": [{"assertion": "assert True"}]})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_case"


def test_reserved_source_name(languages: httpx.Client) -> None:
    response = languages.post("/v1/run", json={"code": "int main(){}", "language": "cpp",
                                               "files": {"main.cpp": "x"}})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_file_name"


# --- the peers' shapes ----------------------------------------------------------------------------

JAVA_SUM = ("import java.util.*;\npublic class Main {\n  public static void main(String[] a) {\n"
            "    Scanner s = new Scanner(System.in);\n"
            "    System.out.println(s.nextLong() + s.nextLong());\n  }\n}\n")
CPP_SUM = "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<std::endl;}"


@pytest.mark.parametrize(("language", "code"), [("cpp", CPP_SUM), ("java", JAVA_SUM)])
def test_sandboxfusion_runs_compiled_code(lang_service: Service, language: str,
                                          code: str) -> None:
    endpoint = lang_service.base_url
    ok = run_code(RunCodeRequest(code=code, language=language, stdin="2 40"), endpoint=endpoint,
                  max_attempts=1, client_timeout=120)
    assert ok.status == RunStatus.Success
    assert ok.compile_result.status == "Finished" and ok.compile_result.return_code == 0
    assert ok.run_result.stdout == "42\n"
    broken = run_code(RunCodeRequest(code=fresh(code.replace("+", "+ +;"), language),
                                     language=language), endpoint=endpoint, max_attempts=1,
                      client_timeout=120)
    assert broken.status == RunStatus.Failed
    assert broken.compile_result.status == "Finished"
    assert broken.compile_result.return_code != 0
    assert broken.compile_result.stderr
    assert broken.run_result is None


def test_sandboxfusion_compile_timeout(languages: httpx.Client) -> None:
    body = languages.post("/run_code", json={"code": fresh(CPP_SUM, "cpp"), "language": "cpp",
                                             "compile_timeout": 0.01}).json()
    assert body["status"] == "Failed"
    assert body["compile_result"]["status"] == "TimeLimitExceeded"
    assert body["compile_result"]["return_code"] is None
    assert body["run_result"] is None


def test_sandboxfusion_pytest(languages: httpx.Client) -> None:
    code = "def add(a, b):\n    return a + b\n\ndef test_add():\n    assert add(2, 2) == 4\n"
    passed = languages.post("/run_code", json={"code": code, "language": "pytest"}).json()
    assert passed["status"] == "Success", passed
    assert "1 passed" in passed["run_result"]["stdout"]
    failed = languages.post("/run_code", json={"code": code.replace("== 4", "== 5"),
                                               "language": "pytest"}).json()
    assert failed["status"] == "Failed"
    assert failed["run_result"]["return_code"] == 1
    assert "1 failed" in failed["run_result"]["stdout"]


def piston(client: httpx.Client, language: str, version: str, content: str, **fields) -> dict:
    body = {"language": language, "version": version,
            "files": [{"name": "prog", "content": content}], **fields}
    response = client.post("/api/v2/execute", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(("language", "code"), [("c++", CPP_SUM), ("java", JAVA_SUM)])
def test_piston_compile_and_run_stages(languages: httpx.Client, language: str,
                                       code: str) -> None:
    body = piston(languages, language, "*", code, stdin="2 40")
    assert body["compile"]["code"] == 0 and body["compile"]["status"] is None
    assert body["run"]["stdout"] == "42\n" and body["run"]["code"] == 0
    broken = piston(languages, language, "*", fresh(code.replace("+", "+ +;"), "cpp"))
    assert broken["compile"]["code"] not in (0, None)
    assert broken["compile"]["stderr"] and broken["compile"]["status"] == "RE"
    assert "run" not in broken


def test_piston_runtimes_one_per_language(languages: httpx.Client) -> None:
    runtimes = {r["language"]: r for r in languages.get("/api/v2/runtimes").json()}
    assert set(runtimes) == {spec.display for spec in REGISTRY}
    assert "c++17" in runtimes["c++"]["aliases"] and runtimes["c++"]["runtime"] == "gcc"
    assert runtimes["c++"]["version"] == "12.2.0"
    open_r1 = piston(languages, "c++17", "12", CPP_SUM, stdin="1 2")  # as open-r1 asks
    assert open_r1["language"] == "c++" and open_r1["run"]["stdout"] == "3\n"
    refused = languages.post("/api/v2/execute", json={"language": "c++", "version": "9",
                                                      "files": [{"content": CPP_SUM}]})
    assert refused.status_code == 400 and refused.json()["error"] == "unsupported_language"


# --- a checker ------------------------------------------------------------------------------------

PY_CHECKER = """import sys
_, output, answer = (open(name).read() for name in sys.argv[1:4])
if output.strip() == "boom":
    sys.exit(7)  # a checker that fails: ours to report
if output.split() != answer.split():
    print("expected", answer.split(), "got", output.split())
    sys.exit(1)
sys.exit(0 if output == answer else 2)
"""


def test_checker_decides_each_case(languages: httpx.Client) -> None:
    cases = [{"stdin": "1 2\n", "expected_stdout": "1 2\n"},  # accepted
             {"stdin": "3\n", "expected_stdout": "4\n"},  # wrong answer
             {"stdin": "5   6\n", "expected_stdout": "5 6\n"},  # presentation error
             {"stdin": "boom\n", "expected_stdout": "x\n"}]  # the checker fails
    body = languages.post("/v1/judge", json={
        "code": "cat", "language": "bash", "cases": cases,
        "checker": {"code": PY_CHECKER, "language": "python"}}).json()
    verdicts = [c["verdict"] for c in body["cases"]]
    assert verdicts == ["passed", "wrong_answer", "presentation_error", "sandbox_error"], body
    assert "expected ['4'] got ['3']" in body["cases"][1]["message"]
    assert "checker failed" in body["cases"][3]["message"]
    assert body["passed"] == 1


def test_checker_in_cpp_compiled_once(languages: httpx.Client) -> None:
    checker = fresh("#include <fstream>\nint main(int c, char** v){std::ifstream o(v[2]), a(v[3]);"
                    "double x, y; o >> x; a >> y; return (x - y < 1e-3 && y - x < 1e-3) ? 0 : 1;}",
                    "cpp")
    cases = [{"stdin": str(i), "expected_stdout": f"{i / 3:.6f}"} for i in range(6)]
    body = languages.post("/v1/judge", json={
        "code": "n = int(input())\nprint(round(n / 3, 4))", "cases": cases,
        "checker": {"code": checker, "language": "cpp"}}).json()
    assert [c["verdict"] for c in body["cases"]] == ["passed"] * 6, body
