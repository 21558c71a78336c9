"""Files asked back (`return_files`): symlinks, FIFOs, escapes and races planted by the code give
nothing but the regular files the code itself wrote in its working directory."""

import base64

import pytest

from tests.security.probe import Warm

PLANT = ("import os\n"
         "open('real.txt', 'w').write('mine')\n"
         "os.symlink('/etc/shadow', 'shadow.txt')\n"
         "os.symlink('/etc/passwd', 'passwd.txt')\n"
         "os.symlink('/opt/runner/runner.py', 'runner.txt')\n"
         "os.symlink('/proc/1/environ', 'environ.txt')\n"
         "os.symlink('/etc', 'etcdir')\n"
         "os.symlink('/proc/self/cwd', 'loop')\n"
         "os.mkfifo('blocking.txt')\n"
         "os.makedirs('sub')\n"
         "os.symlink('../../../etc/passwd', 'sub/up.txt')\n"
         "open('sub/ok.txt', 'w').write('nested')\n")


@pytest.mark.parametrize("patterns", [["*.txt", "**/*.txt"], ["**"], ["**/*"], ["etcdir/*"],
                                      ["loop/**"]])
def test_only_regular_files_of_the_code_come_back(warm: Warm, patterns: list[str]) -> None:
    result = warm.case(PLANT, return_files=patterns, timeout=10)
    assert result["outcome"] == "ok", result
    files = {name: base64.b64decode(f["base64"]) for name, f in result.get("files", {}).items()}
    assert set(files) <= {"real.txt", "sub/ok.txt", "main.py"}, set(files)
    assert files.pop("main.py", PLANT.encode()) == PLANT.encode()  # the code itself, as sent
    assert all(data in (b"mine", b"nested") for data in files.values())
    if patterns == ["**"]:
        assert set(files) == {"real.txt", "sub/ok.txt"}  # the control: real files do come back


def test_a_daemon_swapping_files_for_links_during_collection(warm: Warm) -> None:
    code = ("import os, time\n"
            "open('out.txt', 'w').write('mine')\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    while True:\n"
            "        try:\n"
            "            os.replace('out.txt', 'tmp')\n"
            "            os.symlink('/etc/passwd', 'out.txt')\n"
            "            os.unlink('out.txt')\n"
            "            os.replace('tmp', 'out.txt')\n"
            "        except OSError:\n"
            "            pass\n")
    for _ in range(5):
        result = warm.case(code, return_files=["*.txt"], timeout=5)
        for f in result.get("files", {}).values():
            assert base64.b64decode(f["base64"]) == b"mine"


@pytest.mark.parametrize("pattern", ["../*", "/etc/passwd", "../../etc/passwd", "**/../../etc/*",
                                     "/proc/1/environ", "~/x", "\\\\etc"])
def test_patterns_cannot_leave_the_working_directory(warm: Warm, pattern: str) -> None:
    response = warm.client.post("/v1/run", json={"code": "print(1)", "return_files": [pattern]})
    if response.status_code == 200:
        assert response.json().get("files", {}) == {}, response.json()
        warm.check_after(response.json())
    else:
        assert response.status_code == 422, response.text
