"""Run an attack in a child process with a time and memory limit, so that a hang or a blow-up fails the test
instead of hanging or killing CI.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
from dataclasses import dataclass

MEMORY_LIMIT = 8 * 2**30  # address space of the child: torch and its BLAS threads reserve a few GiB of it


@dataclass
class Outcome:
    """What the child did: ``"ok"`` with its printed JSON value, ``"error"`` with the exception, or ``"killed"``."""

    status: str
    value: object = None
    error: str = ""
    message: str = ""
    stderr: str = ""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_limited(code: str, timeout: float = 60.0, **names: object) -> Outcome:
    """Run ``code`` (a function body that may ``return`` a JSON-able value) in a fresh Python process.

    ``names`` are passed as JSON-able variables. A timeout or a signal gives ``status="killed"``.
    """
    body = textwrap.indent(textwrap.dedent(code), "        ")
    script = (f"import json, sys\nnames = json.loads(sys.argv[1])\nglobals().update(names)\n"
              f"def main():\n    if True:\n{body}\n"
              "try:\n    out = {'status': 'ok', 'value': main()}\n"
              "except BaseException as e:\n"
              "    out = {'status': 'error', 'error': type(e).__name__, 'message': str(e)}\n"
              "print('\\n@@' + json.dumps(out, default=str))\n")
    try:
        proc = subprocess.run([sys.executable, "-c", script, json.dumps(names, default=str)], capture_output=True,
                              text=True, timeout=timeout, preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired as e:
        return Outcome("killed", error="timeout", message=f"no answer within {timeout} s", stderr=str(e.stderr))
    marker = proc.stdout.rfind("\n@@")
    if proc.returncode != 0 or marker < 0:
        return Outcome("killed", error=f"exit {proc.returncode}", stderr=proc.stderr[-2000:])
    return Outcome(**json.loads(proc.stdout[marker + 3:]), stderr=proc.stderr[-2000:])
