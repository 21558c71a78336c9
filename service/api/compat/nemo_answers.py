"""NeMo-Skills' answers built from ours: process_status, IPython's output clean-up, the cut.

Their server (nemo_skills/code_execution/local_sandbox/local_sandbox_server.py) runs `python`
as `python3 -c CODE` and `shell` as `/bin/bash script.sh`; so do the programs below, inside the
sandbox. Its answers' text, reproduced here: the timeout message, the `<output cut>` mark, and
the clean-up of IPython's output for the Plain and Minimal traceback modes.
"""

import re
from typing import Any

from service.models import Outcome

OUTPUT_CUT = "<output cut>"
ANSI_ESCAPE = re.compile(r"\x1B(?:[@-Z\-_]|\[[0-?]*[ -/]*[@-~])")
OUT_PROMPT = re.compile(r"^Out\[\d+\]:\s*")
CLEANED_MODES = ("Minimal", "Plain")
LEADING_INDENT = re.compile(r"^[ \t]+")

PYTHON_PROGRAM = """import subprocess, sys
sys.exit(subprocess.run([sys.executable, "-c", {code!r}]).returncode)
"""
SHELL_PROGRAM = """import subprocess, sys, tempfile
with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as script:
    script.write({code!r})
sys.exit(subprocess.run(["/bin/bash", script.name]).returncode)
"""


def ipython_input(code: str) -> str:
    """The cell as IPython's input transformers leave it: leading blank lines dropped, and the
    first line's indentation taken off every line that starts with it."""
    lines = code.splitlines(keepends=True)
    while lines and (not lines[0] or lines[0].isspace()):
        lines.pop(0)
    indent = LEADING_INDENT.match(lines[0]) if lines else None
    if indent is None:
        return "".join(lines)
    width = len(indent.group(0))
    return "".join(line[width:] if line.startswith(indent.group(0)) else line for line in lines)


def timed_out(timeout: float) -> str:
    return f"Execution timed out after {timeout} seconds\n"


def clean_ipython(output: str, mode: str) -> str:
    """IPython's output as their server hands it back: in Plain and Minimal, no colours, no
    `File <ipython-input-...>` lines, no `Out[n]:` prompts, no leading blank lines."""
    if mode not in CLEANED_MODES:
        return output
    lines = [OUT_PROMPT.sub("", line) for line in ANSI_ESCAPE.sub("", output).split("\n")
             if not line.strip().startswith("File <ipython-")]
    while lines and lines[0] == "":
        lines.pop(0)
    text = "\n".join(lines).rstrip()
    return text + ("\n" if text else "")


def cut(answer: dict[str, Any], max_output_characters: int) -> dict[str, Any]:
    for stream in ("stdout", "stderr"):
        if len(answer[stream]) > max_output_characters:
            answer[stream] = answer[stream][:max_output_characters] + OUTPUT_CUT
    return answer


def one_off_answer(result: dict[str, Any], shell: bool, timeout: float) -> dict[str, Any]:
    """A python or shell run's answer: python completes whatever its exit status (as their
    server's does), shell errs on a non-zero one; a timeout drops the output."""
    if result["outcome"] == Outcome.TIMEOUT:
        return {"process_status": "timeout", "stdout": "", "stderr": timed_out(timeout)}
    failed = shell and result["exit_code"] != 0
    return {"process_status": "error" if failed else "completed",
            "stdout": result["stdout"], "stderr": result["stderr"]}


def ipython_answer(result: dict[str, Any], mode: str, timeout: float) -> dict[str, Any]:
    """A session cell's answer: its traceback is in stdout (as IPython prints it), a timeout
    keeps what the cell printed and says so in stderr."""
    outcome, stderr = result["outcome"], result["stderr"]
    if outcome == Outcome.TIMEOUT:
        status, stderr = "timeout", stderr + timed_out(timeout)
    elif outcome == Outcome.OK or (outcome == Outcome.OUTPUT_LIMIT and result["exit_code"] == 0):
        status = "completed"
    else:
        status = "error"
        if outcome != Outcome.ERROR and result.get("message"):
            stderr += f"\n{result['message']}\n"
    return {"process_status": status, "stdout": clean_ipython(result["stdout"], mode),
            "stderr": clean_ipython(stderr, mode)}
