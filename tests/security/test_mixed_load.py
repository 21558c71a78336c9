"""Many at once: 100 hostile snippets among 200 normal ones, in parallel, through HTTP, against a
service with two workers. Every normal answer must be right; afterwards no process of the
sandbox uid and, once the service has stopped, no container of it may be left."""

import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.security.probe import containers, uid_processes
from tests.support import Service

HOSTILE = [
    ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", {}),
    ("import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(99,)).start()\n",
     {}),
    ("a = []\nwhile True:\n    a.append(bytearray(16 << 20))\n", {"memory_mb": 64}),
    ("import numpy as np\nnp.ones(1 << 30)\n", {"memory_mb": 64}),
    ("while True:\n    pass\n", {}),
    ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(99)\n", {}),
    ("while True:\n    print('y' * 999)\n", {"max_output_bytes": 10_000}),
    ("import os\nos.write(2, b'z' * (8 << 20))\n", {"max_output_bytes": 10_000}),
    ("import os\nfd = os.open('f', os.O_CREAT | os.O_WRONLY)\ntry:\n    while True:\n"
     "        os.write(fd, b'0' * (1 << 20))\nexcept OSError:\n    pass\n", {}),
    ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
     "        time.sleep(999)\n    os._exit(0)\nprint('left a daemon')\n", {}),
    ("import os, signal\nos.kill(-1, signal.SIGKILL)\n", {}),
    ("import ctypes\nctypes.string_at(0)\n", {}),
    ("import os\nos.abort()\n", {}),
    ("import sys\nsys.stdin.read()\nimport threading\nthreading.Event().wait()\n", {}),
    ("import os\nfor p in ('/etc/x', '/usr/x', '/x'):\n    try:\n        open(p, 'w')\n"
     "    except OSError:\n        pass\nos.setuid(0)\n", {}),
    ("import os\nos.system('nohup sleep 999 >/dev/null 2>&1 &')\nopen('/dev/shm/x', 'w')\n", {}),
]


def normal(i: int) -> tuple[str, dict, str]:
    n = random.randint(10, 10_000)
    code = f"import sys\ntoken = sys.stdin.read()\nprint(token, sum(k * k for k in range({n})))\n"
    return code, {"stdin": f"job-{i}"}, f"job-{i} {sum(k * k for k in range(n))}\n"


@pytest.fixture
def pair(redis_url: str, docker_engine: None) -> Iterator[Service]:
    svc = Service(redis_url)
    svc.start(workers=2, wait_idle=6)
    yield svc
    svc.stop()


@pytest.mark.slow
def test_hostile_among_normal(pair: Service) -> None:
    jobs = [(code, {**fields, "timeout": 2}, None) for code, fields in HOSTILE * 7][:100]
    jobs += [normal(i) for i in range(200)]
    random.shuffle(jobs)

    def one(job: tuple[str, dict, str | None]) -> tuple[dict, str | None]:
        code, fields, expected = job
        with httpx.Client(base_url=pair.base_url, timeout=300) as client:
            response = client.post("/v1/run", json={"code": code, **fields})
        assert response.status_code == 200, response.text
        return response.json(), expected

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(one, jobs))
    normals = [(r, expected) for r, expected in results if expected is not None]
    assert len(normals) == 200
    wrong = [(r["outcome"], r["stdout"], expected) for r, expected in normals
             if (r["outcome"], r["stdout"]) != ("ok", expected)]
    assert wrong == []
    ours = [(job[0], r["message"]) for job, (r, _) in zip(jobs, results, strict=True)
            if r["outcome"] == "sandbox_error"]
    assert ours == []

    deadline = time.monotonic() + 30
    while uid_processes(pair.prefix) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert uid_processes(pair.prefix) == []
    pair.stop_serving()
    deadline = time.monotonic() + 30
    while containers(pair.prefix) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert containers(pair.prefix) == []
