"""Fixed ids, paths and limits of the sandbox."""

SANDBOX_UID = SANDBOX_GID = 10001
SCRATCH_DIRS = ("/tmp", "/mnt", "/dev/shm", "/dev/mqueue")
ABSOLUTE_ROOTS = ("/tmp", "/mnt")  # the writable places a return_files pattern may name absolutely
WORK_ROOT = "/tmp"
WORKDIR = "/tmp/work"
MAIN_PATH = WORKDIR + "/main.py"
CLEAN, DIRTY = b"1", b"0"
CLEANUP_TIMEOUT_S = 10
ACCEPT_TIMEOUT_S = 60
PYTHON = "/usr/bin/python3"
READ_CHUNK = 65536
DRAIN_AFTER_EXIT_S = 0.05
CLEANUP_ROUNDS = 200
SANDBOX_NICE = 10
MAX_OPEN_FILES = 256  # RLIMIT_NOFILE of every execution
HOLD_MEMORY_FROM_MIB = 100  # a preloaded template this large (the scientific stack's, not
# numpy's alone) has a holder tear down each child's memory (template.py)
BARE, PRELOADED = "bare", "preloaded"  # the templates, as a request's `template` names them
MAX_WALK_ENTRIES = 20000  # directory entries looked at when matching return_files patterns
INTERRUPT_GRACE_S = 2.0  # a session cell past its timeout gets this long to stop after SIGINT
FIGURES_MODULE = "sandbox_png_backend"  # the image's matplotlib backend (MPLBACKEND below)
CLOCK_REALTIME_COARSE = 5  # Linux's; the clock of file timestamps
CHILD_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "MPLBACKEND": "module://" + FIGURES_MODULE,
    "MPLCONFIGDIR": "/tmp/matplotlib",  # writable (else matplotlib warns on every import)
    "HOME": WORKDIR,
    "TMPDIR": WORK_ROOT,
}
CPU_USAGE_FILES = (  # (file, the line's key or None for a lone number, ns per unit)
    ("/sys/fs/cgroup/cpuacct/cpuacct.usage", None, 1),  # cgroup v1
    ("/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage", None, 1),
    ("/sys/fs/cgroup/cpu.stat", "usage_usec", 1000),  # cgroup v2
)
CPU_QUOTA_FILES = (  # the container's CPU quota: v1 (quota, then its period beside it), v2
    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us",
    "/sys/fs/cgroup/cpu.max",
)
LIMIT_CHECK_MIN_S = 0.02  # the time limits are checked at most this often
PIDS_CURRENT_FILES = (  # the tasks (processes and threads) in the container's cgroup: v1, v2
    "/sys/fs/cgroup/pids/pids.current",
    "/sys/fs/cgroup/pids.current",
)
MEMORY_EVENT_FILES = (  # (file, its OOM-kill count, its count of allocations at the limit)
    ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill", None),  # cgroup v1
    ("/sys/fs/cgroup/memory/memory.failcnt", None, ""),
    ("/sys/fs/cgroup/memory.events", "oom_kill", "max"),  # cgroup v2
)
