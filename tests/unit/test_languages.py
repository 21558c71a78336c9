"""The language registry, the compile cache and its key: pure functions, no Docker."""

import pytest
from pydantic import ValidationError

from service.jobspec import InvalidRequest, build_job_spec
from service.languages import ALIASES, REGISTRY, canonical, java_class, spec_of
from service.models import RunRequest
from service.settings import Settings
from service.worker.programs import CompileCache, Compiled, compile_key, program_fields


def spec_for(code: str, language: str = "cpp", **fields):  # type: ignore[no-untyped-def]
    return build_job_spec(RunRequest(code=code, language=language, **fields), Settings())


def test_aliases_name_one_language_each() -> None:
    assert canonical("C++17") == "cpp"
    assert canonical("nodejs") == "javascript"
    assert canonical("ts") == "typescript"
    assert canonical("golang") == "go"
    assert canonical("sh") == "bash"
    assert canonical("cobol") == "cobol"
    names = [alias for spec in REGISTRY for alias in (spec.name, *spec.aliases)]
    assert len(names) == len(set(names)) == len(ALIASES)


def test_request_takes_an_alias_and_refuses_the_unknown() -> None:
    assert RunRequest(code="", language="c++20").language == "cpp"
    with pytest.raises(ValidationError):
        RunRequest(code="", language="cobol")


def test_java_source_is_named_after_its_public_class() -> None:
    code = "import java.util.*;\npublic final class Solution {\n  public static void main(String[] a) {}\n}"
    assert java_class(code) == "Solution"
    assert java_class("class A { public static void main(String[] a) {} }") == "Main"
    compile_argv, run_argv = spec_of("java").commands(code)
    assert compile_argv[-1] == "Solution.java" and run_argv[-1] == "Solution"


def test_compile_key_follows_everything_that_decides_the_program() -> None:
    base = spec_for("int main(){}")
    key = compile_key(base, spec_of("cpp"), "sandbox-cpp:x")
    assert key == compile_key(spec_for("int main(){}"), spec_of("cpp"), "sandbox-cpp:x")
    assert key == compile_key(spec_for("int main(){}", stdin="other", timeout=3),
                              spec_of("cpp"), "sandbox-cpp:x")  # the run's, not the compile's
    others = {
        compile_key(spec_for("int main(){ }"), spec_of("cpp"), "sandbox-cpp:x"),
        compile_key(spec_for("int main(){}", "c"), spec_of("c"), "sandbox-cpp:x"),
        compile_key(spec_for("int main(){}", files={"a.h": "1"}), spec_of("cpp"), "sandbox-cpp:x"),
        compile_key(base, spec_of("cpp"), "sandbox-cpp:y"),
    }
    assert key not in others and len(others) == 4


def test_cache_evicts_the_least_recently_used() -> None:
    def entry(size: int) -> Compiled:
        return Compiled({"cached": False}, {"main": "x" * size}, None)

    cache = CompileCache(capacity=250)
    cache.put("a", entry(100))
    cache.put("b", entry(100))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", entry(100))
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    cache.put("huge", entry(1000))
    assert cache.get("huge") is None
    assert cache.used <= cache.capacity


def test_run_of_a_compiled_program_carries_its_files_not_its_source() -> None:
    spec = spec_for("int main(){}", files={"in.txt": "1"})
    fields = program_fields(spec, Compiled({}, {"main": "AAAA"}, None))
    assert fields["command"] == ["./main"]
    assert fields["files"] == {**spec.files_b64, "main": "AAAA"}
    assert fields["executable"] == ["main"] and fields["code"] == ""
    interpreted = program_fields(spec_for("echo hi", "bash"), None)
    assert interpreted == {"command": ["bash", "main.sh"], "source": "main.sh"}


def test_source_and_program_names_are_reserved() -> None:
    for name in ("main.cpp", "main"):
        with pytest.raises(InvalidRequest) as refused:
            spec_for("int main(){}", files={name: "x"})
        assert refused.value.reason == "invalid_file_name"


def test_unserved_language_is_refused() -> None:
    settings = Settings(languages="python,c")
    assert settings.languages == ["python", "c"]
    with pytest.raises(InvalidRequest) as refused:
        build_job_spec(RunRequest(code="", language="rust"), settings)
    assert refused.value.reason == "unsupported_language"
    with pytest.raises(ValidationError):
        Settings(languages="cobol")
