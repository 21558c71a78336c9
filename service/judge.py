"""Judging one program against test cases: the code each case runs, and the verdict of its run.

A case with assertions runs the program with the assertions appended, then a line that writes a
random marker (a nonce, new for every request) to standard output. The case passes only if the
marker is there: a program that exits with status 0 before its assertions ran (`exit(0)`,
`os._exit(0)`) is caught. The marker is removed from the stdout the caller sees. It does not stop
a program that reads its own source to find the marker.
"""

import re
import secrets
from collections.abc import Callable, Sequence

from service.jobspec import InvalidRequest
from service.models import (
    CaseResult,
    Checker,
    CompareMode,
    JudgeCase,
    JudgeRequest,
    JudgeResult,
    Language,
    Outcome,
    RunRequest,
    RunResult,
    Verdict,
)

NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
SHOWN_CHARS = 60  # of each side, in a wrong-answer message
SAME_AS_OUTCOME = {
    Outcome.TIMEOUT: Verdict.TIMEOUT,
    Outcome.MEMORY_LIMIT: Verdict.MEMORY_LIMIT,
    Outcome.OUTPUT_LIMIT: Verdict.OUTPUT_LIMIT,
    Outcome.KILLED: Verdict.KILLED,
    Outcome.SANDBOX_ERROR: Verdict.SANDBOX_ERROR,
    Outcome.CANCELLED: Verdict.CANCELLED,
    Outcome.COMPILE_ERROR: Verdict.COMPILE_ERROR,
}


# --- what each case runs -------------------------------------------------------------------------

def new_nonce() -> str:
    return secrets.token_hex(16)


def end_marker_code(nonce: str) -> str:
    """Writes the nonce straight to fd 1, so a program that replaced sys.stdout cannot hide it."""
    return ("import os as _judge_os, sys as _judge_sys\n"
            "for _judge_stream in (_judge_sys.stdout, _judge_sys.__stdout__):\n"
            "    _judge_stream.flush()\n"
            f"_judge_os.write(1, {nonce.encode()!r})\n")


def case_code(program: str, case: JudgeCase, nonce: str) -> str:
    if case.assertion is None:
        return program
    return f"{program}\n\n{case.assertion}\n\n{end_marker_code(nonce)}"


def check_cases(request: JudgeRequest, max_cases: int, max_bytes: int) -> None:
    if len(request.cases) > max_cases:
        raise InvalidRequest("too_many_cases", f"at most {max_cases} cases in one request")
    for i, case in enumerate(request.cases):
        if case.expected_stdout is None and case.assertion is None and request.checker is None:
            raise InvalidRequest("invalid_case",
                                 f"cases[{i}]: give expected_stdout, assertion, or both")
        if case.assertion is not None and request.language != Language.PYTHON:
            raise InvalidRequest("invalid_case", f"cases[{i}]: assertions are python code; "
                                 f"judge {request.language} by expected_stdout")
    shared = len(request.code) + sum(
        len(content if isinstance(content, str) else content.base64)
        for content in request.files.values())
    queued = sum(shared + len(case.assertion or "") + len(case.stdin or "")
                 for case in request.cases)
    if queued > max_bytes:
        raise InvalidRequest("judge_too_large", f"the cases would queue {queued} bytes of code, "
                             f"stdin and files (the program and its files once per case); at "
                             f"most {max_bytes}: fewer cases or smaller files")


def case_requests(request: JudgeRequest, nonce: str) -> list[RunRequest]:
    """One run request per case: the program (with the case's assertions) and the shared limits."""
    return [
        RunRequest(code=case_code(request.code, case, nonce), language=request.language,
                   stdin=case.stdin, files=request.files, timeout=request.timeout,
                   memory_mb=request.memory_mb, max_output_bytes=request.max_output_bytes,
                   fresh_interpreter=request.fresh_interpreter,
                   compile_timeout=request.compile_timeout)
        for case in request.cases
    ]


# --- comparing outputs ---------------------------------------------------------------------------

def _shown(text: str | None) -> str:
    if text is None:
        return "the end of the output"
    return repr(text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…")


def _first_mismatch(got: Sequence[str], expected: Sequence[str], what: str,
                    same: Callable[[str, str], bool]) -> str | None:
    for n in range(max(len(got), len(expected))):
        g = got[n] if n < len(got) else None
        e = expected[n] if n < len(expected) else None
        if g is None or e is None or not same(g, e):
            return f"{what} {n + 1}: expected {_shown(e)}, got {_shown(g)}"
    return None


def _trimmed_lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def numbers_close(got: str, expected: str, tolerance: float) -> bool:
    if got == expected:
        return True
    if not (NUMBER.fullmatch(got) and NUMBER.fullmatch(expected)):
        return False
    g, e = float(got), float(expected)
    return abs(g - e) <= tolerance * max(1.0, abs(e))


def difference(got: str, expected: str, mode: CompareMode, tolerance: float) -> str | None:
    """None when the outputs match under the mode, else where they first differ."""
    if mode is CompareMode.EXACT:
        if got == expected:
            return None
        return _first_mismatch(got.split("\n"), expected.split("\n"), "line", str.__eq__)
    if mode is CompareMode.TRAILING_WHITESPACE:
        return _first_mismatch(_trimmed_lines(got), _trimmed_lines(expected), "line", str.__eq__)
    return _first_mismatch(got.split(), expected.split(), "token",
                           lambda g, e: numbers_close(g, e, tolerance))


# --- verdicts ------------------------------------------------------------------------------------

def _last_stderr_line(result: RunResult) -> str:
    lines = result.stderr.rstrip().rsplit("\n", 1)
    return lines[-1]


def _without_marker(result: RunResult, nonce: str) -> tuple[RunResult, bool]:
    at = result.stdout.rfind(nonce)
    if at < 0:
        return result, False
    stdout = result.stdout[:at] + result.stdout[at + len(nonce):]
    return result.model_copy(update={"stdout": stdout}), True


def _failed_run(case: JudgeCase, result: RunResult) -> tuple[Verdict, str | None]:
    if result.outcome in SAME_AS_OUTCOME:
        return SAME_AS_OUTCOME[result.outcome], result.message
    last = _last_stderr_line(result)
    if case.assertion is not None and last.startswith("AssertionError"):
        return Verdict.WRONG_ANSWER, f"an assertion failed: {last}"
    return Verdict.RUNTIME_ERROR, last or f"exit code {result.exit_code}"


def judge_case(index: int, case: JudgeCase, result: RunResult, nonce: str, mode: CompareMode,
               tolerance: float) -> CaseResult:
    """The verdict of one case's run; the run is reported with the end marker removed."""
    marked = False
    if case.assertion is not None:
        result, marked = _without_marker(result, nonce)
    verdict, message = Verdict.PASSED, None
    if result.outcome is not Outcome.OK:
        verdict, message = _failed_run(case, result)
    elif case.assertion is not None and not marked:
        verdict, message = Verdict.EXITED_EARLY, "the program exited before its assertions ran"
    elif case.expected_stdout is not None:
        message = difference(result.stdout, case.expected_stdout, mode, tolerance)
        verdict = Verdict.WRONG_ANSWER if message else Verdict.PASSED
    return CaseResult(index=index, verdict=verdict, message=message, result=result)


def skipped(index: int, failed: int) -> CaseResult:
    return CaseResult(index=index, verdict=Verdict.SKIPPED,
                      message=f"not judged: case {failed} failed first", result=None)


def summarize(cases: Sequence[CaseResult]) -> JudgeResult:
    passed = sum(case.verdict is Verdict.PASSED for case in cases)
    return JudgeResult(passed=passed, total=len(cases), pass_rate=passed / len(cases),
                       cases=list(cases))


class FirstFailure:
    """Collects verdicts arriving in any order; decided once the first failing case in order is
    known (or every case passed)."""

    def __init__(self, total: int):
        self.total = total
        self.done: dict[int, CaseResult] = {}
        self.passed_prefix = 0  # cases 0 .. passed_prefix-1 are known to have passed

    def add(self, case: CaseResult) -> bool:
        """Record one verdict; True once the outcome of the whole judging is decided."""
        self.done[case.index] = case
        while (self.passed_prefix in self.done
               and self.done[self.passed_prefix].verdict is Verdict.PASSED):
            self.passed_prefix += 1
        return self.passed_prefix == self.total or self.passed_prefix in self.done

    def cases(self) -> list[CaseResult]:
        """Every case: judged up to the first failure, skipped after it."""
        failed = self.passed_prefix
        return [self.done[i] if i <= failed else skipped(i, failed) for i in range(self.total)]


# --- a checker program ---------------------------------------------------------------------------

CHECKER_ARGS = ["input.txt", "output.txt", "answer.txt"]  # testlib's order
CHECKER_VERDICTS = {0: Verdict.PASSED, 1: Verdict.WRONG_ANSWER, 2: Verdict.PRESENTATION_ERROR}


def checker_requests(request: JudgeRequest, checker: Checker,
                     judged: Sequence[CaseResult]) -> dict[int, RunRequest]:
    """A checker run for every case whose program ran to its end (the others keep their
    verdict): its input, the program's output and the expected output as files."""
    runs = {}
    for case, verdict in zip(request.cases, judged, strict=True):
        if verdict.result is None or verdict.result.outcome is not Outcome.OK:
            continue
        files = {**checker.files, "input.txt": case.stdin or "",
                 "output.txt": verdict.result.stdout, "answer.txt": case.expected_stdout or ""}
        runs[verdict.index] = RunRequest(code=checker.code, language=checker.language,
                                         files=files, args=CHECKER_ARGS,
                                         compile_timeout=request.compile_timeout)
    return runs


def checked_case(judged: CaseResult, checked: RunResult) -> CaseResult:
    """The verdict the checker gave a case; a checker that failed is our failure."""
    said = (checked.stdout + checked.stderr).strip().split("\n", 1)[0][:200] or None
    verdict = CHECKER_VERDICTS.get(checked.exit_code) if checked.outcome in (
        Outcome.OK, Outcome.ERROR) else None
    if verdict is None:
        why = checked.message or f"exit code {checked.exit_code}"
        verdict, said = Verdict.SANDBOX_ERROR, f"the checker failed ({checked.outcome}): {why}"
    return judged.model_copy(update={"verdict": verdict,
                                     "message": None if verdict is Verdict.PASSED else said})
