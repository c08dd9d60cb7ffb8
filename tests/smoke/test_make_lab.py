"""`make lab` really starts JupyterLab on the course: start it headless, query its REST API, stop it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.skipif(not (ROOT / ".venv/bin/jupyter").exists(), reason="needs the course environment (.venv)")
def test_make_lab_serves_the_lessons(tmp_path):
    port, token = _free_port(), "hrlib-smoke-test"
    args = (f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --IdentityProvider.token={token} "
            f"--ServerApp.runtime_dir={tmp_path}")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def get(path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}?token={token}", timeout=5) as r:
            return json.loads(r.read())

    try:
        deadline, status = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None:
            try:
                status = get("/api/status")
                break
            except OSError:
                time.sleep(0.5)
        assert status is not None, f"JupyterLab did not answer: {proc.stdout.read() if proc.poll() is not None else ''}"
        lessons = {item["name"] for item in get("/api/contents/lessons")["content"]}
        assert "00_why_high_resolution.ipynb" in lessons
        kernels = get("/api/kernelspecs")["kernelspecs"]
        assert "python3" in kernels
        argv0 = kernels["python3"]["spec"]["argv"][0]
        assert argv0 in ("python", sys.executable) or Path(argv0).resolve() == (ROOT / ".venv/bin/python").resolve()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            output = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output = proc.communicate()[0]
    if os.environ.get("HRLIB_EXPECT_SETUP_DONE"):  # set by `make test`: its own set-up ran just before
        assert "environment is up to date" in output, f"make lab reinstalled instead of skipping:\n{output[:2000]}"
