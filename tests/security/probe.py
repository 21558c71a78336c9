"""Helpers of the security tests: run a snippet, then prove the next execution clean and right.

`probe` runs a normal snippet that computes an answer the test knows and describes the sandbox it
ran in: its container, its working directory, what is left in the writable places, the SysV IPC
objects, any other process of the sandbox uid, its environment and its open descriptors, and
the process it ran as (uid, groups, session, nice, OOM score, limits).
"""

import json
import random
import time
from dataclasses import dataclass

import docker
import httpx

from tests.support import Service, run, sandbox_containers, sandbox_uid_processes

PROBE = r'''
import json, os, re, resource, sys
n = int(sys.stdin.read())
me = os.getpid()
others = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == me:
        continue
    try:
        status = open(f"/proc/{pid}/status").read()
    except OSError:
        continue
    uid = int(status.split("Uid:")[1].split()[0])
    state = status.split("State:")[1].split()[0]
    if uid == os.getuid() and state != "Z":
        others.append(open(f"/proc/{pid}/cmdline").read().replace("\0", " "))
def ipc(kind):
    return len(open(f"/proc/sysvipc/{kind}").read().splitlines()) - 1
found = re.search(r"/containers/([0-9a-f]{64})/", open("/proc/self/mountinfo").read())
cwd = os.getcwd()
print(json.dumps({
    "answer": sum(i * i for i in range(n)),
    "container": found.group(1) if found else None,
    "cwd": cwd,
    "cwd_entries": sorted(os.listdir(".")),
    "tmp": sorted(os.listdir("/tmp")),
    "shm": sorted(os.listdir("/dev/shm")),
    "mqueue": sorted(os.listdir("/dev/mqueue")),
    "sysv": [ipc("shm"), ipc("msg"), ipc("sem")],
    "processes": others,
    "env": {k: v for k, v in os.environ.items() if k != "HOME"},
    "home_is_cwd": os.environ.get("HOME") == cwd,
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    "uid": [os.getuid(), os.geteuid(), os.getgid()],
    "nice": os.nice(0),
    "groups": os.getgroups(),
    "own_session": os.getsid(0) == os.getpid(),
    "oom_score_adj": open("/proc/self/oom_score_adj").read().strip(),
    "rlimits": [resource.getrlimit(resource.RLIMIT_CORE), resource.getrlimit(resource.RLIMIT_NOFILE)],
    "tmp_free": os.statvfs("/tmp").f_bavail * os.statvfs("/tmp").f_frsize,
    "tmp_size": os.statvfs("/tmp").f_blocks * os.statvfs("/tmp").f_frsize,
}))
'''


@dataclass
class Sight:
    """What a probe saw."""

    container: str
    details: dict


def probe(client: httpx.Client) -> Sight:
    """A normal execution: its answer must be right and its sandbox clean."""
    n = random.randint(1000, 100_000)
    result = run(client, PROBE, stdin=str(n), timeout=30)
    assert result["outcome"] == "ok", result
    seen = json.loads(result["stdout"])
    assert seen["answer"] == sum(i * i for i in range(n))
    assert seen["cwd_entries"] == ["main.py"], seen
    assert seen["tmp"] == [seen["cwd"].rsplit("/", 1)[1]], seen
    assert seen["shm"] == [] and seen["mqueue"] == [], seen
    assert seen["sysv"] == [0, 0, 0], seen
    assert seen["processes"] == [], seen
    assert seen["home_is_cwd"], seen
    assert seen["uid"] == [10001, 10001, 10001], seen
    assert seen["nice"] == 10, seen  # below the runner, which must stay able to kill it
    assert seen["groups"] == [] and seen["own_session"], seen
    assert seen["oom_score_adj"] == "1000", seen  # the OOM killer's first choice
    assert seen["rlimits"] == [[0, 0], [256, 256]], seen  # no core files; 256 fds
    assert seen["tmp_free"] > seen["tmp_size"] * 0.9, seen
    return Sight(seen["container"], seen)


class Warm:
    """A service with one worker and one warm container, for cases where reuse matters."""

    def __init__(self, service: Service, client: httpx.Client):
        self.service = service
        self.client = client
        self.baseline = probe(client)

    def run(self, code: str, **fields) -> dict:
        return run(self.client, code, **fields)

    def check_after(self, result: dict, before: Sight | None = None,
                    may_replace: bool = False) -> Sight:
        """The execution after `result`: right, clean, and in the same container unless the
        outcome required a replacement (or `may_replace`: the clean-up may give up on it)."""
        after = probe(self.client)
        assert after.details["env"] == self.baseline.details["env"]
        if before is not None and not may_replace:
            replaced = result["outcome"] not in ("ok", "error", "timeout")
            assert (after.container != before.container) == replaced, (result, before, after)
        assert no_sandbox_processes(self.service)
        return after

    def case(self, code: str, may_replace: bool = False, **fields) -> dict:
        """Run a hostile snippet between two probes; return its result."""
        before = probe(self.client)
        result = self.run(code, **fields)
        self.check_after(result, before, may_replace)
        return result


def uid_processes(prefix: str) -> list[str]:
    """tests.support.sandbox_uid_processes, retried while a container is being replaced (it may
    vanish between the listing and the look inside)."""
    for _ in range(50):
        try:
            return sandbox_uid_processes(prefix)
        except docker.errors.NotFound:
            time.sleep(0.1)
    return sandbox_uid_processes(prefix)


def containers(prefix: str) -> list:
    for _ in range(50):
        try:
            return sandbox_containers(prefix)
        except docker.errors.NotFound:
            time.sleep(0.1)
    return sandbox_containers(prefix)


def no_sandbox_processes(service: Service, wait_s: float = 10) -> bool:
    """No process of the sandbox uid left in the deployment's containers (seen from the host)."""
    deadline = time.monotonic() + wait_s
    while uid_processes(service.prefix):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
