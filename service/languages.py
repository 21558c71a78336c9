"""The languages the service runs: the one place a language is described.

An entry names the language and its aliases, the sandbox image that runs it, the file the
source is written to, the compile command (run inside the sandbox, as the sandbox uid, with its
own limits) and the files it produces, the run command, and the version reported (pinned here,
checked against the image by a test). The request models, the job spec, the worker's pools, the
SandboxFusion and Piston routes, the tool schema and `/api/v2/runtimes` all read this table:
adding a language is one entry here and an image under sandbox_images/.

Python is the exception that proves the rule: it has no command, its code runs in a fork of the
runner's warm interpreter (or, with `fresh_interpreter`, `python3 -B main.py`). `pytest` (as
SandboxFusion names it) is Python code run as a test module by pytest, in Python's image.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field

JAVA_PUBLIC_CLASS = re.compile(r"^\s*public\s+(?:(?:final|abstract|strictfp)\s+)*class\s+([A-Za-z_$][\w$]*)",
                               re.MULTILINE)


def java_class(code: str) -> str:
    """The class javac wants the file named after (its public top-level class), else Main."""
    match = JAVA_PUBLIC_CLASS.search(code)
    return match.group(1) if match else "Main"


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    display: str  # as Piston lists it
    image: str  # sandbox-<image>:<tag>
    version: str
    aliases: tuple[str, ...] = ()
    source: str = "main"
    compile: tuple[str, ...] = ()  # argv; empty: nothing to compile
    artifacts: tuple[str, ...] = ()  # what the compile leaves that the run needs (patterns)
    executables: tuple[str, ...] = ()  # artifacts to mark executable
    run: tuple[str, ...] = ()
    entry: Callable[[str], str] | None = field(default=None, compare=False)  # Java's class name

    def source_name(self, code: str) -> str:
        return f"{self.entry(code)}.java" if self.entry else self.source

    def commands(self, code: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(compile argv, run argv) for this code, `{main}` and `{source}` filled in."""
        main = self.entry(code) if self.entry else ""
        fill = {"{main}": main, "{source}": self.source_name(code)}
        return (tuple(fill.get(a, a) for a in self.compile),
                tuple(fill.get(a, a) for a in self.run))


REGISTRY: tuple[LanguageSpec, ...] = (
    LanguageSpec("python", "python", "python", "3.11.2",
                 aliases=("py", "py3", "python3", "python3.11"), source="main.py",
                 run=("python3", "-B", "main.py")),
    LanguageSpec("pytest", "pytest", "python", "7.2.1", source="test_main.py",
                 run=("python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_main.py")),
    LanguageSpec("cpp", "c++", "cpp", "12.2.0",
                 aliases=("c++", "c++17", "c++20", "cc", "cxx", "g++"), source="main.cpp",
                 compile=("g++", "-std=gnu++20", "-O2", "-pipe", "-o", "main", "{source}"),
                 artifacts=("main",), executables=("main",), run=("./main",)),
    LanguageSpec("c", "c", "cpp", "12.2.0", aliases=("gcc", "c11", "c17"), source="main.c",
                 compile=("gcc", "-std=gnu17", "-O2", "-pipe", "-o", "main", "{source}", "-lm"),
                 artifacts=("main",), executables=("main",), run=("./main",)),
    LanguageSpec("java", "java", "java", "17",
                 aliases=("jdk", "openjdk"), entry=java_class,
                 compile=("javac", "-J-XX:+UseSerialGC", "-J-XX:TieredStopAtLevel=1",
                          "-encoding", "UTF-8", "{source}"),
                 artifacts=("*.class",),
                 run=("java", "-XX:+UseSerialGC", "-XX:MaxRAMPercentage=60", "-Xss64m",
                      "-cp", ".", "{main}")),
    LanguageSpec("javascript", "javascript", "node", "18.20.4",
                 aliases=("js", "nodejs", "node", "node-js", "node-javascript"), source="main.js",
                 run=("node", "main.js")),
    LanguageSpec("typescript", "typescript", "node", "5.6.3",
                 aliases=("ts", "node-ts", "tsc"), source="main.ts",
                 compile=("tsc", "--noCheck", "--target", "es2022", "--module", "commonjs",
                          "--skipLibCheck", "{source}"),
                 artifacts=("main.js",), run=("node", "main.js")),
    LanguageSpec("go", "go", "go", "1.19.8", aliases=("golang",), source="main.go",
                 compile=("go", "build", "-o", "main", "{source}"),
                 artifacts=("main",), executables=("main",), run=("./main",)),
    LanguageSpec("rust", "rust", "rust", "1.63.0", aliases=("rs", "rustc"), source="main.rs",
                 compile=("rustc", "--edition", "2021", "-O", "-o", "main", "{source}"),
                 artifacts=("main",), executables=("main",), run=("./main",)),
    LanguageSpec("bash", "bash", "bash", "5.2.15", aliases=("sh", "shell"), source="main.sh",
                 run=("bash", "main.sh")),
)

BY_NAME = {spec.name: spec for spec in REGISTRY}
ALIASES = {alias: spec.name for spec in REGISTRY for alias in (spec.name, *spec.aliases)}
IMAGES = tuple(dict.fromkeys(spec.image for spec in REGISTRY))


def canonical(value: object) -> object:
    """A language's name for any of its aliases (any case); anything else unchanged."""
    if isinstance(value, str):
        return ALIASES.get(value.strip().lower(), value)
    return value


def spec_of(name: str) -> LanguageSpec:
    return BY_NAME[str(name)]
