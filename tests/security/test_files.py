"""Supplied files and symlinks: names are checked, files are written fresh, links lead nowhere.

The API refuses bad names; the runner writes each file as the sandbox uid with
O_NOFOLLOW | O_EXCL in a working directory made fresh for each execution; the worker never reads
anything the code wrote but its output pipes.
"""

import base64
import json

import pytest

from tests.security.probe import Warm


@pytest.mark.parametrize("name", [
    "../up", "a/../../up", "/abs", "//abs", "./here", "a/./b", "a//b", "a/", "a/b/..", ".", "..",
    "", "back\\slash", "nul\0byte", "x" * 256, "new\nline", "tab\there", "\ud800", "main.py",
])
def test_bad_file_names_are_refused(warm: Warm, name: str) -> None:
    body = json.dumps({"code": "print(1)", "files": {name: "x"}})  # ASCII: surrogates escaped
    response = warm.client.post("/v1/run", content=body,
                                headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    if response.status_code == 422:
        assert response.json()["error"] in ("invalid_file_name", "invalid_request"), response.text


def test_a_name_that_is_both_a_file_and_a_directory(warm: Warm) -> None:
    response = warm.client.post("/v1/run", json={"code": "print(1)",
                                                 "files": {"a": "1", "a/b": "2"}})
    assert (response.status_code, response.json()["error"]) == (422, "invalid_file_name")


def test_size_caps(warm: Warm) -> None:
    """The warm service takes 48 MiB bodies; the files cap is 32 MiB, their count 256."""
    big = {"big.bin": {"base64": base64.b64encode(b"\0" * (33 << 20)).decode()}}
    response = warm.client.post("/v1/run", json={"code": "print(1)", "files": big})
    assert (response.status_code, response.json()["error"]) == (422, "files_too_large")
    many = {f"f{i}": "" for i in range(257)}
    response = warm.client.post("/v1/run", json={"code": "print(1)", "files": many})
    assert (response.status_code, response.json()["error"]) == (422, "too_many_files")


def test_deep_and_odd_but_valid_names_are_written_where_asked(warm: Warm) -> None:
    files = {"a/b/c/d/e/f.txt": "deep", "-rf": "dash", " spaced name ": "space",
             "ünïcödé.txt": "u", ".hidden": "h", "..not-parent": "dots"}
    code = ("import os\n"
            "for root, dirs, names in sorted(os.walk('.')):\n"
            "    for n in sorted(names):\n"
            "        p = os.path.join(root, n)\n"
            "        print(p, open(p).read(), os.path.islink(p), oct(os.stat(p).st_mode & 0o777),\n"
            "              os.stat(p).st_uid)\n")
    result = warm.case(code, files=files)
    lines = set(result["stdout"].splitlines())
    for name, content in files.items():
        assert f"./{name} {content} False 0o644 10001" in lines, result["stdout"]


def test_the_working_directory_is_fresh_so_nothing_can_be_planted(warm: Warm) -> None:
    """Symlinks planted under every name the next request will use are gone before it."""
    plant = ("import os\n"
             "for name in ('data.txt', 'sub', 'main.py'):\n"
             "    for where in ('.', '/tmp', '/dev/shm'):\n"
             "        p = os.path.join(where, name)\n"
             "        if not os.path.lexists(p):\n"
             "            os.symlink('/etc/shadow' if name != 'sub' else '/opt/runner', p)\n"
             "os.chdir('/tmp')\n"
             "os.symlink('/etc', '/tmp/work-next')\n"
             "print(sorted(os.listdir('/tmp')))\n")
    result = warm.case(plant)
    assert result["outcome"] == "ok", result
    files = {"data.txt": "mine", "sub/inner.txt": "also mine"}
    code = ("import os\n"
            "print(os.getcwd(), sorted(os.listdir('.')), sorted(os.listdir('/tmp')))\n"
            "print(os.path.islink('data.txt'), os.path.islink('sub'), open('data.txt').read(),\n"
            "      open('sub/inner.txt').read())\n")
    result = warm.case(code, files=files)
    cwd = result["stdout"].split()[0]
    assert result["stdout"].splitlines()[1] == "False False mine also mine", result
    assert f"['data.txt', 'main.py', 'sub'] ['{cwd.rsplit('/', 1)[1]}']" in result["stdout"]


def test_symlinks_to_secrets_give_nothing_away(warm: Warm) -> None:
    """Links the code plants to host-looking and runner paths: read as the sandbox uid they
    give what that uid may read (not /etc/shadow), and the worker reads none of them."""
    code = ("import os\n"
            "targets = {'shadow': '/etc/shadow', 'runner': '/opt/runner/runner.py',\n"
            "           'environ': '/proc/1/environ', 'sock': '/var/run/docker.sock',\n"
            "           'stdout_of_runner': '/proc/1/fd/1'}\n"
            "for name, target in targets.items():\n"
            "    os.symlink(target, name)\n"
            "    try:\n"
            "        data = open(name, 'rb').read(64)\n"
            "        print(name, 'read', len(data))\n"
            "    except OSError as exc:\n"
            "        print(name, type(exc).__name__)\n"
            "os.unlink('main.py')\n"
            "os.symlink('/etc/shadow', 'main.py')\n")
    result = warm.case(code)
    lines = dict(line.split(" ", 1) for line in result["stdout"].splitlines())
    assert lines["shadow"] == "PermissionError"
    assert lines["environ"] == "PermissionError"
    assert lines["sock"] == "FileNotFoundError"
    assert lines["stdout_of_runner"] == "PermissionError"
    assert lines["runner"].startswith("read")  # the image's own code, public by design
    assert "root:" not in result["stdout"] + result["stderr"]
