"""A request turned into a job: limits resolved against the settings, files encoded.

The API builds a JobSpec from each RunRequest (refusing what exceeds the maxima) and queues it as
JSON; the worker reads it back. Both sides share this one definition.
"""

import base64
import posixpath

from pydantic import BaseModel

from service.languages import spec_of
from service.models import BinaryFile, Language, RunRequest
from service.settings import Settings, mib_ceil


class InvalidRequest(ValueError):
    """A request the service refuses, with a machine-readable reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


RUNNER_GRACE_S = 20.0  # past a run's limits, before a silent runner counts as dead: killing
# what hostile code started (a fork bomb's hundred processes) takes seconds on a saturated host
FILES_GRACE_S = 10.0  # and more when the runner reads files back first
TRANSIT_GRACE_S = 5.0  # a worker's answer on its way back through Redis
# What the runner holds at once to answer, per byte of output at the cap: the bytes read, their
# text, and the JSON frame and its encoding (where a NUL or another control byte takes six).
RESULT_BYTES_PER_OUTPUT_BYTE = 18


class JobSpec(BaseModel):
    language: Language
    code: str
    stdin_b64: str | None
    files_b64: dict[str, str]
    timeout_s: float
    cpu_timeout_s: float | None = None
    cpu_wait_allowance_s: float = 0.0  # how far past timeout_s waits for a CPU may take it
    memory_mb: int
    max_output_bytes: int
    max_file_bytes: int
    fresh_interpreter: bool
    argv: list[str] = []
    network: bool = False
    return_files: list[str] = []
    max_return_files: int = 0
    max_return_bytes: int = 0
    ipython: str | None = None  # a session cell shown as IPython shows it: its traceback mode
    stream: bool = False  # output sent on as it is produced (service/store/output.py)
    compile_timeout_s: float = 0.0
    compile_memory_mb: int = 0

    def sandbox_memory_mb(self) -> int:
        """Memory of the container beyond the runner's own: the code's, or, if more, what the
        runner needs to send back both streams at their cap (the code has ended by then)."""
        result = 2 * RESULT_BYTES_PER_OUTPUT_BYTE * self.max_output_bytes
        return max(self.memory_mb, mib_ceil(result))

    def wall_limit_s(self) -> float:
        """The run's hard wall-clock cap."""
        return self.timeout_s + self.cpu_wait_allowance_s

    def runner_wait_s(self) -> float:
        """How long the runner may take to answer an execution of this job."""
        return self.wall_limit_s() + RUNNER_GRACE_S + (FILES_GRACE_S if self.return_files else 0.0)


RESERVED_FILE_NAMES = frozenset({"main.py"})  # the runner writes the code there
MAX_RETURN_PATTERNS = 16
ABSOLUTE_ROOTS = ("/tmp/", "/mnt/")  # writable tmpfs: a pattern may name a file there absolutely


def to_bytes(text: str, what: str, errors: str = "surrogateescape") -> bytes:
    """UTF-8, with lone surrogates U+DC80..U+DCFF standing for the bytes that are not (unless
    errors="strict": text that must be text, such as Python source)."""
    try:
        return text.encode("utf-8", errors)
    except UnicodeEncodeError as exc:
        raise InvalidRequest("invalid_text", f"{what}: {exc.reason} at {exc.start}") from exc


def check_reserved(names: set[str], language: Language, code: str) -> None:
    """A compiled or interpreted language's source and program names are the runner's."""
    spec = spec_of(language)
    if spec.name == "python":
        return
    reserved = {spec.source_name(code), *spec.executables, *(
        a for a in spec.artifacts if "*" not in a)}
    for name in names & reserved:
        raise InvalidRequest("invalid_file_name", f"file name {name!r} is reserved for the "
                             f"{spec.name} program")


def check_file_name(name: str) -> None:
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name or "\0" in name
            or any(p in ("", ".", "..") for p in parts) or len(name) > 255
            or posixpath.normpath(name) != name or not name.isprintable()
            or any(0xD800 <= ord(c) <= 0xDFFF for c in name)):
        raise InvalidRequest("invalid_file_name", f"file name {name!r} must be relative and "
                             "printable, without '..', '.' or '//'")
    if name in RESERVED_FILE_NAMES:
        raise InvalidRequest("invalid_file_name", f"file name {name!r} is reserved for the code")


def check_file_tree(names: set[str]) -> None:
    """No name may be both a file and a directory of another file."""
    for name in names:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in names:
                raise InvalidRequest("invalid_file_name",
                                     f"{'/'.join(parts[:depth])!r} is both a file and a directory")


def encode_files(files: dict[str, str | BinaryFile], settings: Settings) -> dict[str, str]:
    if len(files) > settings.max_file_count:
        raise InvalidRequest("too_many_files", f"at most {settings.max_file_count} files")
    encoded, total = {}, 0
    for name, content in files.items():
        check_file_name(name)
        if isinstance(content, BinaryFile):
            try:
                data = base64.b64decode(content.base64, validate=True)
            except ValueError as exc:  # binascii.Error, or characters that are not ASCII
                raise InvalidRequest("invalid_base64", f"file {name!r}: {exc}") from exc
        else:
            data = to_bytes(content, f"file {name!r}")
        total += len(data)
        encoded[name] = base64.b64encode(data).decode()
    check_file_tree(set(files))
    if total > settings.max_files_bytes:
        raise InvalidRequest("files_too_large", f"files exceed {settings.max_files_bytes} bytes")
    return encoded


def check_return_files(patterns: list[str]) -> list[str]:
    """Glob patterns of files to send back: relative (or absolute under /tmp/ or /mnt/), without
    '..', '.' or '//'."""
    if len(patterns) > MAX_RETURN_PATTERNS:
        raise InvalidRequest("invalid_return_files", f"at most {MAX_RETURN_PATTERNS} patterns")
    for pattern in patterns:
        relative = next((pattern[len(r):] for r in ABSOLUTE_ROOTS if pattern.startswith(r)),
                        pattern)
        parts = relative.split("/")
        if (not relative or relative.startswith("/") or "\\" in pattern or len(pattern) > 255
                or any(p in ("", ".", "..") for p in parts) or not pattern.isprintable()
                or any(0xD800 <= ord(c) <= 0xDFFF for c in pattern)):
            raise InvalidRequest("invalid_return_files", f"pattern {pattern!r} must be relative "
                                 "(or under /tmp/ or /mnt/) and printable, without '..', '.' or "
                                 "'//'")
    return patterns


def _bounded(name: str, value: float | None, default: float, low: float, high: float) -> float:
    value = default if value is None else value
    if not low <= value <= high:
        raise InvalidRequest("limit_exceeded", f"{name} must be between {low} and {high}")
    return value


def build_job_spec(req: RunRequest, settings: Settings, wall_clock: bool = False) -> JobSpec:
    """wall_clock: the timeout is plain wall-clock time (the compatibility routes' peers')."""
    if len(to_bytes(req.code, "code", errors="strict")) > settings.max_code_bytes:
        raise InvalidRequest("code_too_large", f"code exceeds {settings.max_code_bytes} bytes")
    if req.network and not settings.allow_network:
        raise InvalidRequest("network_not_allowed", "network access is not allowed here")
    if req.network and req.language != Language.PYTHON:
        raise InvalidRequest("network_not_allowed", "network access is for python code only")
    if req.language not in settings.languages:
        raise InvalidRequest("unsupported_language", f"{req.language} is not served here "
                             f"(SANDBOX_LANGUAGES: {', '.join(settings.languages)})")
    check_reserved(set(req.files), req.language, req.code)
    stdin = to_bytes(req.stdin, "stdin") if req.stdin else b""
    if len(stdin) > settings.max_files_bytes:
        raise InvalidRequest("stdin_too_large", f"stdin exceeds {settings.max_files_bytes} bytes")
    return JobSpec(
        language=req.language,
        code=req.code,
        stdin_b64=base64.b64encode(stdin).decode() if stdin else None,
        files_b64=encode_files(req.files, settings),
        timeout_s=_bounded("timeout", req.timeout, settings.default_timeout_s, 0.001,
                           settings.max_timeout_s),
        cpu_timeout_s=None if req.cpu_timeout is None else _bounded(
            "cpu_timeout", req.cpu_timeout, 0, 0.001, settings.max_cpu_timeout_s),
        cpu_wait_allowance_s=0.0 if wall_clock else settings.cpu_wait_allowance_s,
        memory_mb=int(_bounded("memory_mb", req.memory_mb, settings.default_memory_mb,
                               settings.min_memory_mb, settings.max_memory_mb)),
        max_output_bytes=int(_bounded("max_output_bytes", req.max_output_bytes,
                                      settings.default_output_bytes, 1,
                                      settings.max_output_bytes)),
        max_file_bytes=settings.max_file_bytes,
        fresh_interpreter=req.fresh_interpreter,
        argv=req.args,
        network=req.network,
        return_files=check_return_files(req.return_files),
        max_return_files=settings.max_return_files,
        max_return_bytes=settings.max_return_bytes,
        compile_timeout_s=_bounded("compile_timeout", req.compile_timeout,
                                   settings.default_compile_timeout_s, 0.001,
                                   settings.max_compile_timeout_s),
        compile_memory_mb=settings.compile_memory_mb,
    )
