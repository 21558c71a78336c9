"""The one settings class: every knob is an environment variable prefixed SANDBOX_."""

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.languages import BY_NAME, REGISTRY, canonical, spec_of

MIB = 1024 * 1024


def mib_ceil(size: int) -> int:
    """Whole MiB to hold `size` bytes (exact for any size)."""
    return -(-size // MIB)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANDBOX_", frozen=True)

    # Where things are
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis holding the queue.")
    key_prefix: str = Field("sandbox", description="Prefix of every Redis key; one per deployment.")
    host: str = Field("127.0.0.1", description="Address the API binds.")
    port: int = Field(8000, ge=1, le=65535)
    http_keep_alive_s: float = Field(
        75.0, gt=0, description="How long the API keeps an idle connection open. Longer than "
        "the idle expiry of clients' connection pools and of proxies in front (httpx 5 s, "
        "HAProxy 60 s here), so a client never reuses a connection the API is closing.")
    docker_url: str | None = Field(None, description="Docker engine; default: DOCKER_HOST or local socket.")
    runner_transport: Literal["auto", "socket", "attach"] = Field(
        "auto", description="How a worker talks to its runners: a unix socket in a shared host "
        "directory (fastest; the worker must run as root on the Docker host), the container's "
        "attached stdin/stdout through the Docker API (works with a remote engine), or auto.")
    runner_socket_dir: str = Field("/var/lib/sandbox/sockets",
                                   description="Host directory of the runners' sockets.")
    image_tag: str = Field("latest", description="Tag of the sandbox images, sandbox-<language>:<tag> "
                           "(as sandbox_images/build.sh tags them, from the same variable).")
    image_python: str | None = Field(None, description="Image of the python sandbox; default: "
                                     "sandbox-python:<image_tag>.")
    languages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [spec.name for spec in REGISTRY],
        description="Comma-separated languages (names or aliases) the deployment serves, the "
        "same for its API and workers: the API refuses others (422 unsupported_language), a "
        "worker keeps warm containers for these. Python is always served. Default: all.")

    # Access
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Comma-separated bearer keys; empty: no authentication.")
    allow_insecure_bind: bool = Field(False, description="Allow a non-loopback bind without keys.")
    tenants_file: str | None = Field(
        None, description="TOML file of the tenants (their keys, limits and weights); read again "
        "when it changes or on SIGHUP. Replaces SANDBOX_API_KEYS, which may not be set with it.")

    # Worker and pool
    pool_size: int = Field(
        128, ge=1, le=256, description="Warm containers per worker = concurrent executions. "
        "Bounded by memory, not cores: an idle warm container holds about 27 MiB, and programs "
        "that wait (sleeps, endless loops waiting for their timeout) take no CPU from the others.")
    language_warm: int = Field(1, ge=0, le=256, description="Warm containers kept per image "
                               "other than Python's; more start on demand, up to pool_size.")
    language_idle_s: float = Field(60.0, gt=0, description="A container past language_warm "
                                   "idle this long is stopped.")
    executions_per_container: int = Field(1000, ge=1, description="Recycle a container after this many.")
    preload: str = Field("numpy", description="Modules the preloaded template of Python's pool "
                         "imports before forking (comma-separated); code importing none of "
                         "them is forked from the bare template.")
    scientific_pool_size: int = Field(
        2, ge=0, le=64, description="Warm containers per worker whose preloaded template has "
        "imported scientific_preload, for code that imports any of the scientific stack; more "
        "start on demand up to scientific_pool_max. 0: such code runs on Python's pool.")
    scientific_pool_max: int = Field(8, ge=1, le=256, description="Most containers of the "
                                     "scientific pool of one worker.")
    scientific_preload: str = Field(
        "numpy,scipy,scipy.optimize,scipy.integrate,scipy.linalg,scipy.stats,scipy.special,"
        "sympy,pandas,networkx,z3,ortools.linear_solver.pywraplp,ortools.sat.python.cp_model,"
        "pulp,cvxpy,matplotlib.pyplot", description="Modules the scientific pool's template "
        "imports before forking (comma-separated); code importing one of their packages (not "
        "one of preload's alone) runs there.")
    scientific_runner_memory_mb: int = Field(
        512, ge=32, description="Memory added to memory_mb for the runner of a scientific "
        "container (its template holds the imported stack).")
    cpu_slots: int = Field(
        0, ge=0, le=1024, description="Runs of a worker whose timeout forgives waits for a CPU "
        "(the native routes) start only while fewer than this many of them are busy on the CPU; "
        "sleepers hold none. 0: twice the host's cores.")
    container_cpus: float = Field(1.0, gt=0, le=64, description="CPU quota of one container.")
    container_pids: int = Field(128, ge=16, le=4096, description="Processes in one container.")
    container_tmpfs_mb: int = Field(64, ge=1, le=4096, description="Size of the working tmpfs.")
    runner_memory_mb: int = Field(192, ge=32, description="Memory added to memory_mb for the runner itself.")
    runtime: str | None = Field(None, description="OCI runtime of sandbox containers, e.g. runsc "
                                "(gVisor, registered with the engine); default: the engine's.")
    allow_network: bool = Field(False, description="Let requests ask for network access "
                                "(their own bridge network, walled off from this host).")
    network_pool_size: int = Field(1, ge=1, le=64, description="Warm single-use containers per "
                                   "worker for requests with network access.")
    heartbeat_s: float = Field(2.0, gt=0, le=60)
    reclaim_idle_s: float = Field(15.0, gt=0, description="Reclaim a job silent this long.")
    shutdown_grace_s: float = Field(30.0, ge=0, description="On SIGTERM, running jobs get this long.")
    max_deliveries: int = Field(3, ge=1, le=100, description="Dead-letter a job delivered this often.")

    # Limits of one execution: defaults and maxima
    default_timeout_s: float = Field(10.0, gt=0)
    max_timeout_s: float = Field(300.0, gt=0)
    max_cpu_timeout_s: float = Field(300.0, gt=0, description="Largest cpu_timeout a request may ask.")
    cpu_wait_allowance_s: float = Field(
        15.0, ge=0, description="A run's timeout does not count the time it waited for a CPU "
        "while the host ran others, up to this much more of wall-clock time; 0: timeouts are "
        "plain wall-clock time.")
    default_memory_mb: int = Field(512, ge=16)
    min_memory_mb: int = Field(16, ge=1)
    max_memory_mb: int = Field(8192, ge=16)
    default_output_bytes: int = Field(1 * MIB, ge=1)
    max_output_bytes: int = Field(16 * MIB, ge=1)
    max_code_bytes: int = Field(1 * MIB, ge=1)
    max_files_bytes: int = Field(32 * MIB, ge=0, description="All supplied files of one request together.")
    max_file_count: int = Field(256, ge=0)
    max_return_files: int = Field(32, ge=0, description="Most files returned by one run (return_files).")
    max_return_bytes: int = Field(8 * MIB, ge=0, description="All returned files of one run together.")

    # Compiled languages
    default_compile_timeout_s: float = Field(30.0, gt=0, description="Generous: a compile slowed "
                                             "by a loaded host is not the program's fault.")
    max_compile_timeout_s: float = Field(120.0, gt=0)
    compile_memory_mb: int = Field(1024, ge=64, description="Memory of a compile step, MiB.")
    max_artifact_bytes: int = Field(64 * MIB, ge=1, description="Largest compiled program kept.")
    compile_cache_mb: int = Field(256, ge=0, description="Compiled programs a worker keeps, "
                                  "least recently used first out.")

    # Sessions: a container kept per caller, state kept between calls
    max_sessions: int = Field(1024, ge=0, description="Open sessions across the cluster; past it: 429.")
    max_sessions_per_worker: int | None = Field(
        None, ge=0, description="Open sessions one worker holds; unset: as many idle ones as fit "
        "in session_memory_share of its Docker host's memory (see README, Sessions at rollout "
        "scale).")
    session_memory_share: float = Field(
        0.5, gt=0, le=1, description="The share of a worker's Docker host memory its idle "
        "sessions may take, when max_sessions_per_worker is unset.")
    session_warm: int = Field(64, ge=0, le=1024, description="Containers a worker keeps warm for "
                              "sessions about to open (within max_sessions_per_worker).")
    default_session_idle_s: float = Field(600.0, gt=0, description="A session idle this long is closed.")
    max_session_idle_s: float = Field(3600.0, gt=0)
    session_interrupt_grace_s: float = Field(
        2.0, gt=0, le=60, description="A session call past its timeout is interrupted (SIGINT); "
        "if it has not stopped this much later, the session process is killed and the session lost.")

    # API and queue
    max_body_bytes: int = Field(64 * MIB, ge=1024, description="Largest request body accepted.")
    max_judge_bytes: int = Field(
        256 * MIB, ge=1024, description="Most code, stdin and files one /v1/judge call queues in "
        "all: the program and its files go once with every case.")
    result_ttl_s: int = Field(3600, ge=1, description="How long results stay readable.")
    max_queue_depth: int = Field(100_000, ge=1, description="Past this many queued jobs: 429.")
    queue_wait_s: float = Field(600.0, gt=0, description="How long a sync caller waits in the queue.")
    redis_connections: int = Field(256, ge=2, le=65536, description="Redis connections of one "
                                   "API process or worker; a call waits for one when all are busy.")
    max_batch_items: int = Field(10_000, ge=1, description="Most runs in one /v1/batch call, "
                                 "and most cases in one /v1/judge call.")
    interactive_max_items: int = Field(
        16, ge=1, description="Most runs a batch (or cases a judging) may have to ask for "
        "priority `interactive`; larger ones are bulk work.")
    log_level: str = Field("INFO")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @model_validator(mode="after")
    def _one_source_of_keys(self) -> "Settings":
        if self.tenants_file and self.api_keys:
            raise ValueError("set SANDBOX_TENANTS_FILE or SANDBOX_API_KEYS, not both")
        return self

    @field_validator("languages", mode="before")
    @classmethod
    def _split_languages(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            names = [canonical(v) for v in value]
            unknown = [n for n in names if n not in BY_NAME]
            if unknown:
                raise ValueError(f"unknown languages {unknown}; known: {sorted(BY_NAME)}")
            return list(dict.fromkeys(["python", *names]))  # sessions and tools need it
        return value

    @property
    def batch_limit(self) -> int:
        """Most runs in one batch (or cases in one judging): a batch is queued whole or not at
        all, so one larger than the queue could never be."""
        return min(self.max_batch_items, self.max_queue_depth)

    @property
    def max_file_bytes(self) -> int:
        """The largest file the code may write: its scratch space, whole."""
        return self.container_tmpfs_mb * 1024 * 1024

    def image_for(self, language: str) -> str:
        """The image that runs a language (its registry entry's)."""
        image = spec_of(language).image
        if image == "python" and self.image_python:
            return self.image_python
        return f"sandbox-{image}:{self.image_tag}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
