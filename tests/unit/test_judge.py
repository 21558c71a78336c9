"""The judge's pure parts: the code each case runs, output comparison, verdicts, stopping early."""

import pytest

from service import judge
from service.jobspec import InvalidRequest
from service.models import (
    BinaryFile,
    CaseResult,
    CompareMode,
    JudgeCase,
    JudgeRequest,
    Outcome,
    RunResult,
    Timing,
    Verdict,
)

NONCE = "0123456789abcdef0123456789abcdef"
EXACT, TRAILING, NUMERIC = CompareMode.EXACT, CompareMode.TRAILING_WHITESPACE, CompareMode.NUMERIC


def result(outcome: Outcome = Outcome.OK, stdout: str = "", stderr: str = "",
           exit_code: int | None = 0, signal: int | None = None,
           message: str | None = None) -> RunResult:
    return RunResult(id="j", outcome=outcome, exit_code=exit_code, signal=signal, stdout=stdout,
                     stderr=stderr, timing=Timing(queue_ms=1, run_ms=2, total_ms=3),
                     message=message)


def verdict_of(case: JudgeCase, run: RunResult, mode: CompareMode = TRAILING,
               tolerance: float = 1e-6):
    return judge.judge_case(0, case, run, NONCE, mode, tolerance)


# --- comparing ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("got", "expected", "mode", "same"), [
    ("3\n", "3\n", EXACT, True),
    ("3\n", "3", EXACT, False),
    ("3 \n", "3\n", EXACT, False),
    ("3 \n\n\n", "3", TRAILING, True),
    ("a  \r\nb\t\n", "a\nb", TRAILING, True),
    (" 3\n", "3\n", TRAILING, False),
    ("1\n\n2\n", "1\n2\n", TRAILING, False),
    ("", "\n\n", TRAILING, True),
    ("0.3333333\n", "0.333333333", NUMERIC, True),
    ("0.34", "0.333333333", NUMERIC, False),
    ("1e6 2", "1000000\n2.0", NUMERIC, True),
    ("1000001", "1000000", NUMERIC, True),  # relative: 1e-6 of 1e6 is 1
    ("1000002", "1000000", NUMERIC, False),
    ("yes 1", "yes 1.0000001", NUMERIC, True),
    ("Yes 1", "yes 1", NUMERIC, False),
    ("1_000", "1000", NUMERIC, False),  # float() would accept it; a judge must not
    ("nan", "nan", NUMERIC, True),
    ("1 2", "1 2 3", NUMERIC, False),
])
def test_difference(got: str, expected: str, mode: CompareMode, same: bool) -> None:
    assert (judge.difference(got, expected, mode, 1e-6) is None) is same


def test_difference_names_the_first_mismatch() -> None:
    assert judge.difference("1\n2\n4\n", "1\n2\n3\n", TRAILING, 0) == "line 3: expected '3', got '4'"
    assert judge.difference("1\n", "1\n2\n", TRAILING, 0) == (
        "line 2: expected '2', got the end of the output")
    assert judge.difference("1 2 5", "1 2 3", NUMERIC, 0.1) == "token 3: expected '3', got '5'"
    long = judge.difference("x" * 500, "y", EXACT, 0)
    assert long is not None and len(long) < 200


def test_tolerance_is_absolute_near_zero() -> None:
    assert judge.numbers_close("0.0000005", "0", 1e-6)
    assert not judge.numbers_close("0.000002", "0", 1e-6)
    assert judge.numbers_close("-2.5", "-2.5000001", 1e-6)
    assert not judge.numbers_close("inf", "1e999", 1e-6)


# --- the code of a case --------------------------------------------------------------------------

def test_stdout_case_runs_the_program_as_is() -> None:
    case = JudgeCase(stdin="1", expected_stdout="1")
    assert judge.case_code("print(input())", case, NONCE) == "print(input())"


def test_assertion_case_appends_assertions_then_the_marker() -> None:
    code = judge.case_code("def f(): return 1", JudgeCase(assertion="assert f() == 1"), NONCE)
    program, _, rest = code.partition("assert f() == 1")
    assert program.startswith("def f(): return 1\n")
    assert NONCE not in program
    assert f"_judge_os.write(1, b'{NONCE}')" in rest
    compile(code, "main.py", "exec")


def test_nonces_differ() -> None:
    assert len({judge.new_nonce() for _ in range(100)}) == 100


def test_check_cases() -> None:
    request = JudgeRequest(code="", cases=[JudgeCase(expected_stdout=""), JudgeCase(stdin="x")])
    with pytest.raises(InvalidRequest, match=r"cases\[1\]") as caught:
        judge.check_cases(request, 10, 1 << 20)
    assert caught.value.reason == "invalid_case"
    with pytest.raises(InvalidRequest) as caught:
        judge.check_cases(request, 1, 1 << 20)
    assert caught.value.reason == "too_many_cases"


def test_the_program_and_files_count_once_per_case() -> None:
    request = JudgeRequest(code="x" * 100, files={"a": "y" * 50, "b": BinaryFile(base64="AAAA")},
                           cases=[JudgeCase(stdin="12", expected_stdout="")] * 3)
    judge.check_cases(request, 10, 3 * (100 + 50 + 4 + 2))
    with pytest.raises(InvalidRequest) as caught:
        judge.check_cases(request, 10, 3 * (100 + 50 + 4 + 2) - 1)
    assert caught.value.reason == "judge_too_large"


def test_case_requests_share_the_limits() -> None:
    request = JudgeRequest(code="print(1)", timeout=2, memory_mb=64, files={"a": "b"},
                           cases=[JudgeCase(stdin="x", expected_stdout="1"),
                                  JudgeCase(assertion="assert 1")])
    first, second = judge.case_requests(request, NONCE)
    assert (first.code, first.stdin, first.timeout, first.memory_mb) == ("print(1)", "x", 2, 64)
    assert second.files == {"a": "b"} and NONCE in second.code and second.stdin is None


# --- verdicts -------------------------------------------------------------------------------------

def test_passed_and_wrong_answer() -> None:
    case = JudgeCase(expected_stdout="3")
    assert verdict_of(case, result(stdout="3\n")).verdict is Verdict.PASSED
    wrong = verdict_of(case, result(stdout="4\n"))
    assert wrong.verdict is Verdict.WRONG_ANSWER
    assert wrong.message == "line 1: expected '3', got '4'"
    assert verdict_of(case, result(stdout="3\n"), EXACT).verdict is Verdict.WRONG_ANSWER


def test_assertions_pass_only_with_the_marker() -> None:
    case = JudgeCase(assertion="assert f() == 1")
    passed = verdict_of(case, result(stdout=f"hello\n{NONCE}"))
    assert passed.verdict is Verdict.PASSED
    assert passed.result is not None and passed.result.stdout == "hello\n"
    early = verdict_of(case, result(stdout="hello\n"))
    assert early.verdict is Verdict.EXITED_EARLY
    forged = verdict_of(case, result(stdout="ffffffffffffffffffffffffffffffff"))
    assert forged.verdict is Verdict.EXITED_EARLY


def test_marker_and_expected_stdout_together() -> None:
    case = JudgeCase(assertion="assert True", expected_stdout="ok")
    assert verdict_of(case, result(stdout=f"ok\n{NONCE}")).verdict is Verdict.PASSED
    assert verdict_of(case, result(stdout=f"no\n{NONCE}")).verdict is Verdict.WRONG_ANSWER
    # output written at exit, after the marker, is the program's and stays
    late = verdict_of(case, result(stdout=f"ok\n{NONCE}bye\n"))
    assert late.result is not None and late.result.stdout == "ok\nbye\n"
    assert late.verdict is Verdict.WRONG_ANSWER


def test_failed_assertion_is_a_wrong_answer() -> None:
    tb = "Traceback (most recent call last):\n  File ...\nAssertionError: f(2) should be 4\n"
    case = JudgeCase(assertion="assert f(2) == 4, 'f(2) should be 4'")
    failed = verdict_of(case, result(Outcome.ERROR, stderr=tb, exit_code=1))
    assert failed.verdict is Verdict.WRONG_ANSWER
    assert failed.message == "an assertion failed: AssertionError: f(2) should be 4"


def test_runtime_error() -> None:
    tb = "Traceback (most recent call last):\nZeroDivisionError: division by zero\n"
    for case in (JudgeCase(expected_stdout="1"), JudgeCase(assertion="assert f()")):
        failed = verdict_of(case, result(Outcome.ERROR, stderr=tb, exit_code=1))
        assert failed.verdict is Verdict.RUNTIME_ERROR
        assert failed.message == "ZeroDivisionError: division by zero"
    silent = verdict_of(JudgeCase(expected_stdout=""), result(Outcome.ERROR, exit_code=3))
    assert (silent.verdict, silent.message) == (Verdict.RUNTIME_ERROR, "exit code 3")


@pytest.mark.parametrize(("outcome", "verdict"), [
    (Outcome.TIMEOUT, Verdict.TIMEOUT),
    (Outcome.MEMORY_LIMIT, Verdict.MEMORY_LIMIT),
    (Outcome.OUTPUT_LIMIT, Verdict.OUTPUT_LIMIT),
    (Outcome.KILLED, Verdict.KILLED),
    (Outcome.SANDBOX_ERROR, Verdict.SANDBOX_ERROR),
])
def test_outcomes_other_than_ok_and_error(outcome: Outcome, verdict: Verdict) -> None:
    run = result(outcome, stdout="3\n", exit_code=None, signal=9, message="why")
    judged = verdict_of(JudgeCase(expected_stdout="3"), run)
    assert (judged.verdict, judged.message) == (verdict, "why")


def test_summary() -> None:
    cases = [verdict_of(JudgeCase(expected_stdout="1"), result(stdout=out)) for out in "1121"]
    summary = judge.summarize(cases)
    assert (summary.passed, summary.total, summary.pass_rate) == (3, 4, 0.75)


# --- stopping at the first failure ----------------------------------------------------------------

def case(index: int, verdict: Verdict) -> CaseResult:
    return CaseResult(index=index, verdict=verdict, result=None)


def test_first_failure_waits_for_the_cases_before_it() -> None:
    tracker = judge.FirstFailure(5)
    assert not tracker.add(case(3, Verdict.WRONG_ANSWER))
    assert not tracker.add(case(0, Verdict.PASSED))
    assert not tracker.add(case(2, Verdict.PASSED))
    assert tracker.add(case(1, Verdict.PASSED))
    verdicts = [c.verdict for c in tracker.cases()]
    assert verdicts == [Verdict.PASSED] * 3 + [Verdict.WRONG_ANSWER, Verdict.SKIPPED]


def test_first_failure_discards_later_verdicts() -> None:
    tracker = judge.FirstFailure(4)
    assert not tracker.add(case(2, Verdict.PASSED))
    assert not tracker.add(case(3, Verdict.PASSED))
    assert tracker.add(case(0, Verdict.TIMEOUT))
    cases = tracker.cases()
    assert [c.verdict for c in cases] == [Verdict.TIMEOUT] + [Verdict.SKIPPED] * 3
    assert cases[2].message == "not judged: case 0 failed first"


def test_first_failure_all_passed() -> None:
    tracker = judge.FirstFailure(3)
    assert [tracker.add(case(i, Verdict.PASSED)) for i in (2, 1, 0)] == [False, False, True]
    assert [c.index for c in tracker.cases()] == [0, 1, 2]
