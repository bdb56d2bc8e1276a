"""Creating, reading and deleting pipelines."""

from __future__ import annotations

import ast
import builtins  # in annotations after a method named list, which shadows the built-in there
import hashlib
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from rayline.config import Settings
from rayline.domain.archive import extract_archive, read_text_member, write_package_zip
from rayline.domain.io_types import InputSpec, OutputSpec, parse_input_specs, parse_output_specs
from rayline.domain.names import validate_name
from rayline.errors import AlreadyExists, InvalidInput, NotFound, PayloadTooLarge
from rayline.store.db import Database
from rayline.store.models import Package, Pipeline, utcnow

READY = "ready"
# Modules the processes running a pipeline import themselves: a pipeline may not hide them.
PLATFORM_MODULES = ("ray", "rayline", "serve_apps", "pydantic", "sqlalchemy", "starlette", "fastapi", "httpx")


@dataclass
class PipelineCreate:
    pipeline_name: str
    function_path: str
    function_name: str
    description: str | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    container_config: dict[str, Any] = field(default_factory=dict)


def _package_digest(package_uri: str) -> str:
    return package_uri.rsplit("/", 1)[-1].removesuffix(".zip")


def pipeline_specs(pipeline: Pipeline) -> tuple[list[InputSpec], list[OutputSpec]]:
    """The declared inputs and outputs of a stored pipeline."""
    return [InputSpec(**spec) for spec in pipeline.inputs], [OutputSpec(**spec) for spec in pipeline.outputs]


def is_plain_def(source: str, function_path: str, function_name: str) -> bool:
    """Refuse at creation, not at the first run, a file that does not define the function; True
    when it surely is a plain ``def``, no coroutine function: one undecorated ``def`` at the top
    level, and nothing else in the file that could bind that name (an ``async def``, a
    decorator, an import, an assignment in a block, ``globals()``...). A wrong False only costs
    speed (serve_apps.low_latency.build), a wrong True a pod whose coroutines share Serve's loop."""
    try:
        tree = ast.parse(source, filename=function_path)
    except SyntaxError as error:
        raise InvalidInput(
            f"function_path {function_path!r} has a syntax error at line {error.lineno}: {error.msg}."
        ) from None
    bindings = [node for node in tree.body if _binds(node, function_name)]
    if not bindings:
        raise InvalidInput(f"function_name {function_name!r} is not defined at the top level of {function_path!r}.")
    # Any other binding, at the top level or below, is one of the nodes the walk finds.
    first = bindings[0]
    return (
        isinstance(first, ast.FunctionDef)
        and not first.decorator_list
        and not any(_may_bind(node, function_name) for node in ast.walk(tree) if node is not first)
    )


# Calls through which a module can bind any of its names.
_NAME_BINDERS = {"globals", "vars", "setattr", "exec", "eval", "locals", "__import__"}


def _may_bind(node: ast.AST, name: str) -> bool:
    """Whether ``node``, anywhere in the module, may bind ``name`` (conservatively)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, ast.Name):
        return node.id == name and not isinstance(node.ctx, ast.Load)
    if isinstance(node, ast.Attribute):  # handler.__code__ = ..., module.handler = ...
        return not isinstance(node.ctx, ast.Load) and (
            node.attr == name or (isinstance(node.value, ast.Name) and node.value.id == name)
        )
    if isinstance(node, ast.alias):
        return node.name == "*" or _imported_as(node) == name
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return name in node.names
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Name) and node.func.id in _NAME_BINDERS
    return False


def _binds(node: ast.stmt, name: str) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(isinstance(t, ast.Name) and t.id == name for t in targets)
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any(_imported_as(alias) == name for alias in node.names)
    return False


def _imported_as(alias: ast.alias) -> str:
    """The name an import binds: ``import a.b`` binds ``a``."""
    return alias.asname or alias.name.split(".")[0]


def _check_no_shadowing(root: Path) -> None:
    """The package is the working directory of Python processes (Ray's workers among them): a
    top-level json.py or logging/ would replace the standard module for them and break them."""
    for entry in root.iterdir():
        module = entry.stem if entry.suffix == ".py" else entry.name if entry.is_dir() else None
        if module in sys.stdlib_module_names or module in PLATFORM_MODULES:
            raise InvalidInput(
                f"The pipeline folder has {entry.name!r} at its top, which hides Python's own "
                f"{module!r} module from the processes that run it; rename it (e.g. "
                f"'{module}_step{entry.suffix}') or move it into a sub-folder."
            )


def _requirements(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


class PipelineService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    def create(self, params: PipelineCreate, archive: bytes) -> Pipeline:
        name = validate_name("pipeline_name", params.pipeline_name)
        if not params.function_path or not params.function_name:
            raise InvalidInput("function_path and function_name are required: the file and the function to run.")
        if not params.function_name.isidentifier():
            raise InvalidInput(f"function_name {params.function_name!r} is not a valid Python name.")
        if not params.function_path.endswith(".py"):
            raise InvalidInput(f"function_path must be a .py file, not {params.function_path!r}.")
        inputs = parse_input_specs(params.inputs)
        outputs = parse_output_specs(params.outputs)
        if len(archive) > self._settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"step_file is {len(archive)} bytes; the limit is {self._settings.max_upload_bytes} "
                "(RAYLINE_MAX_UPLOAD_BYTES). Upload only what the pipeline needs."
            )
        with self._db.session() as session:
            if session.get(Pipeline, name) is not None:
                raise AlreadyExists(f"A pipeline named {name!r} already exists; delete it first or pick another name.")

        config = {k: v for k, v in params.container_config.items() if v not in (None, "")}
        sha = hashlib.sha256(archive).hexdigest()
        with tempfile.TemporaryDirectory(prefix="rayline-upload-") as tmp:
            root = Path(tmp)
            extract_archive(archive, root, self._settings.max_unpacked_bytes, self._settings.max_archive_members)
            _check_no_shadowing(root)
            source = read_text_member(root, params.function_path, "function_path")
            plain_def = is_plain_def(source, params.function_path, params.function_name)
            requirements: list[str] = []
            if config.get("requirements_path"):
                requirements = _requirements(read_text_member(root, config["requirements_path"], "requirements_path"))
            package = self._settings.packages_dir / name / f"{sha[:16]}.zip"
            write_package_zip(root, package)
        package_uri = self._publish(package)

        row = Pipeline(
            name=name,
            function_path=params.function_path,
            function_name=params.function_name,
            description=params.description,
            inputs=[asdict(i) for i in inputs],
            outputs=[asdict(o) for o in outputs],
            container_config=config,
            requirements=requirements,
            package_uri=package_uri,
            package_sha256=sha,
            plain_def=plain_def,
            status=READY,
            created_at=utcnow(),
        )
        try:
            with self._db.session() as session:
                session.add(row)
        except IntegrityError:
            raise AlreadyExists(
                f"A pipeline named {name!r} already exists; delete it first or pick another name."
            ) from None
        return row

    def _publish(self, package: Path) -> str:
        """The URI Ray's nodes fetch the package from: the file itself on one machine; on a
        cluster, the control plane's URL, content-addressed (nodes cache what they fetched)."""
        base = self._settings.package_url_base
        if not base:
            return package.as_uri()
        data = package.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        try:
            with self._db.session() as session:
                if session.get(Package, digest) is None:
                    session.add(Package(sha256=digest, data=data, created_at=utcnow()))
        except IntegrityError:  # the same package, stored at the same moment by another upload
            pass
        return f"{base.rstrip('/')}/api/v1/packages/{digest}.zip"

    def package(self, filename: str) -> bytes:
        """A package by its content address (``<sha256>.zip``), for the nodes that run it."""
        digest = filename.removesuffix(".zip")
        with self._db.session() as session:
            row = session.get(Package, digest) if filename.endswith(".zip") and len(digest) == 64 else None
            if row is None:
                raise NotFound(f"No package {filename!r}.")
            return row.data

    def get(self, name: str) -> Pipeline:
        with self._db.session() as session:
            row = session.get(Pipeline, name)
        if row is None:
            raise NotFound(f"Pipeline {name!r} does not exist; list_pipelines() shows the ones that do.")
        return row

    def list(self) -> list[Pipeline]:
        with self._db.session() as session:
            return list(session.scalars(select(Pipeline).order_by(Pipeline.created_at.desc())))

    def delete(self, name: str, delete_deployments: Callable[[str], builtins.list[dict[str, str]]]) -> dict[str, Any]:
        """Delete a pipeline and its package (after its deployments, through ``delete_deployments``,
        which refuses unless forced). Its past executions stay readable."""
        row = self.get(name)
        deleted_deployments = delete_deployments(name)
        with self._db.session() as session:
            current = session.get(Pipeline, name)
            if current is not None:
                session.delete(current)
                session.flush()
                digest = _package_digest(current.package_uri)  # compared by content, whatever the URL base
                if not session.scalar(select(Pipeline.name).where(Pipeline.package_uri.like(f"%/{digest}.zip"))):
                    session.execute(delete(Package).where(Package.sha256 == digest))
        shutil.rmtree(self._settings.packages_dir / row.name, ignore_errors=True)
        return {"pipeline": {"name": name}, "deployments": deleted_deployments}
