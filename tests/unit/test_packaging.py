"""Set-up files agree: pyproject.toml ranges, the lock's pins, environment.yml, the Makefile and CI."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements/lock.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"lock line {line!r} is not an exact pin"
            pins[_norm(name)] = version
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _declared() -> list[Requirement]:
    project = _pyproject()["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + sum(project["optional-dependencies"].values(), [])]
    return [r for r in reqs if r.marker is None or r.marker.evaluate()]  # the tested Python's set


def test_lock_pins_every_declared_dependency_within_its_range():
    pins = _lock()
    for req in _declared():
        assert _norm(req.name) in pins, f"{req.name} is declared in pyproject.toml but not pinned in the lock"
        assert req.specifier.contains(pins[_norm(req.name)]), f"lock pins {req.name}=={pins[_norm(req.name)]}, " \
                                                              f"outside pyproject's range {req.specifier}"


def test_tested_pins():
    pins = _lock()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert pins["albumentations"].startswith("2.0.")


def test_environment_yml_agrees_with_pyproject_and_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    assert SpecifierSet(_pyproject()["project"]["requires-python"]).contains(python.split("=")[1] + ".0")
    pip_lines = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-c requirements/lock.txt" in pip_lines and "-e ." in pip_lines
    env_pins = {_norm(Requirement(x).name): str(Requirement(x).specifier) for x in pip_lines if not x.startswith("-")}
    declared = {_norm(r.name) for r in _declared()}
    assert set(env_pins) == declared, f"only in environment.yml: {set(env_pins) - declared}; " \
                                      f"only in pyproject.toml: {declared - set(env_pins)}"
    pins = _lock()
    for name, spec in env_pins.items():
        assert spec == f"=={pins[name]}", f"environment.yml has {name}{spec}, the lock has =={pins[name]}"


def test_makefile_installs_from_the_lock_and_ci_runs_make_test():
    makefile = (ROOT / "Makefile").read_text()
    assert "-c $(LOCK)" in makefile and "LOCK := requirements/lock.txt" in makefile
    assert re.search(r"^lab: setup", makefile, re.M) and re.search(r"^test: setup", makefile, re.M)
    assert "make test" in (ROOT / ".ci/run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
