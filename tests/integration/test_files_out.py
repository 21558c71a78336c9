"""Files back from a run: by glob, within the caps, read in the sandbox without following links."""

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.probe import probe
from tests.support import run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def content(result: dict, name: str) -> bytes:
    return base64.b64decode(result["files"][name]["base64"])


def test_files_by_glob_with_media_types(client: httpx.Client) -> None:
    code = ("import os\n"
            "os.makedirs('out/deep')\n"
            "open('report.txt', 'w').write('hello')\n"
            "open('out/table.csv', 'w').write('a,b\\n1,2\\n')\n"
            "open('out/deep/data.json', 'w').write('{}')\n"
            "open('out/deep/blob.bin', 'wb').write(bytes(range(256)))\n"
            "open('skipped.log', 'w').write('no')\n"
            "open('.hidden.txt', 'w').write('no')\n")
    result = run(client, code, return_files=["*.txt", "out/**/*.csv", "**/*.json", "out/deep/*.bin"])
    assert result["outcome"] == "ok", result
    assert sorted(result["files"]) == ["out/deep/blob.bin", "out/deep/data.json", "out/table.csv",
                                       "report.txt"]
    assert content(result, "report.txt") == b"hello"
    assert content(result, "out/deep/blob.bin") == bytes(range(256))
    media = {name: f["media_type"] for name, f in result["files"].items()}
    assert media == {"report.txt": "text/plain", "out/table.csv": "text/csv",
                     "out/deep/data.json": "application/json",
                     "out/deep/blob.bin": "application/octet-stream"}
    assert result["files_truncated"] is False


def test_without_return_files_nothing_comes_back(client: httpx.Client) -> None:
    result = run(client, "open('a.txt', 'w').write('x')")
    assert "files" not in result


def test_supplied_files_and_fresh_interpreter(client: httpx.Client) -> None:
    result = run(client, "open('out.txt', 'w').write(open('in.txt').read().upper())",
                 files={"in.txt": "shout"}, return_files=["out.txt"], fresh_interpreter=True)
    assert content(result, "out.txt") == b"SHOUT"


def test_count_and_size_caps(client: httpx.Client) -> None:
    many = run(client, "for i in range(40):\n    open(f'f{i:02}.txt', 'w').write(str(i))",
               return_files=["*.txt"])
    assert len(many["files"]) == 32 and many["files_truncated"] is True
    assert sorted(many["files"]) == [f"f{i:02}.txt" for i in range(32)]
    big = run(client, "for name in 'abc':\n    open(name + '.bin', 'wb').write(b'x' * (3 << 20))\n"
                      "open('huge.bin', 'wb').write(b'y' * (9 << 20))",
              return_files=["*.bin"], timeout=30)
    assert sorted(big["files"]) == ["a.bin", "b.bin"], sorted(big["files"])  # 8 MiB in all
    assert big["files_truncated"] is True
    assert content(big, "a.bin") == b"x" * (3 << 20)


@pytest.fixture
def host_secret() -> Iterator[Path]:
    """A file on the host only: the worker, running as root, could read it if it followed links."""
    path = Path("/root") / f".sandbox-test-secret-{uuid.uuid4().hex}"
    path.write_text("HOST SECRET")
    yield path
    path.unlink()


def test_planted_symlinks_are_not_followed(client: httpx.Client, host_secret: Path) -> None:
    code = (f"import os\n"
            f"os.symlink({str(host_secret)!r}, 'host.txt')\n"
            "os.symlink('/opt/runner/runner.py', 'runner.txt')\n"
            "os.symlink('/etc/passwd', 'passwd.txt')\n"
            "os.symlink('/opt/runner', 'linked')\n"
            "os.mkdir('real'); os.symlink('/etc', 'real/etc')\n"
            "os.mkfifo('pipe.txt')\n"
            "open('plain.txt', 'w').write('mine')\n")
    result = run(client, code, return_files=["*.txt", "linked/*", "linked/**/*", "real/etc/*",
                                             "**/passwd"])
    assert result["outcome"] == "ok", result
    assert sorted(result["files"]) == ["plain.txt"], sorted(result["files"])
    assert "HOST SECRET" not in str(result) and "def main" not in str(result)
    assert probe(client).details["cwd_entries"] == ["main.py"]


def test_bad_patterns_are_refused(client: httpx.Client) -> None:
    for pattern in ["../x", "/etc/*", "a//b", "a/../b", "./x", "", "x" * 256, "new\nline"]:
        response = client.post("/v1/run", json={"code": "1", "return_files": [pattern]})
        assert response.status_code == 422, pattern
        assert response.json()["error"] in ("invalid_return_files", "invalid_request"), pattern
    response = client.post("/v1/run", json={"code": "1", "return_files": ["*"] * 17})
    assert (response.status_code, response.json()["error"]) == (422, "invalid_return_files")


def test_matplotlib_figures_come_back_as_png(client: httpx.Client) -> None:
    code = ("import matplotlib.pyplot as plt\n"
            "plt.plot([1, 4, 9]); plt.title('shown')\n"
            "plt.show()\n"
            "plt.figure(); plt.bar([1, 2], [3, 4]); plt.savefig('saved.png')\n"
            "plt.figure(); plt.plot([0, 1])  # left open: saved at exit\n")
    result = run(client, code, return_files=["*.png"], timeout=60)
    assert result["outcome"] == "ok", result
    assert result["stderr"] == "", result["stderr"]
    assert sorted(result["files"]) == ["figure-1.png", "figure-2.png", "saved.png"]
    for name, file in result["files"].items():
        assert file["media_type"] == "image/png"
        assert content(result, name).startswith(PNG_MAGIC), name


def test_a_session_returns_what_each_call_wrote(client: httpx.Client) -> None:
    sid = client.post("/v1/sessions", json={}).json()["id"]
    try:
        def call(code: str) -> dict:
            response = client.post(f"/v1/sessions/{sid}/run",
                                   json={"code": code, "return_files": ["*.png", "*.txt"]})
            assert response.status_code == 200, response.text
            return response.json()

        first = call("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n"
                     "open('a.txt', 'w').write('a')\nNone")
        assert sorted(first["files"]) == ["a.txt", "figure-1.png"], first
        assert content(first, "figure-1.png").startswith(PNG_MAGIC)
        second = call("open('b.txt', 'w').write('b')\nplt.plot([3, 2, 1])\nplt.show()")
        assert sorted(second["files"]) == ["b.txt", "figure-2.png"], second
        third = call("os_ok = 1")
        assert third["files"] == {} and third["files_truncated"] is False
        planted = call(f"import os\nos.symlink('/opt/runner/runner.py', 'link.txt')\n"
                       f"os.symlink({os.devnull!r}, 'null.txt')")
        assert planted["files"] == {}, planted
    finally:
        client.delete(f"/v1/sessions/{sid}")
