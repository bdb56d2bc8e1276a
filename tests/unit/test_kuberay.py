"""kuberay/: the Kubernetes manifests, checked without a cluster.

- Every ``ray.io/v1`` RayCluster validates against KubeRay's CRD schema (``kuberay/crds/``, a copy
  of KubeRay's, compared with ``../shared/kuberay-crds`` where that exists) with ``jsonschema``.
  The schema is made strict first: an object schema that lists its properties rejects others, as
  the API server does under ``kubectl apply``'s default strict field validation, so that a
  misspelt field fails here instead of being dropped in the cluster.
- Every core object (Service, Secret, StatefulSet, ...) validates with ``kubernetes-validate``
  (strict) for Kubernetes ``K8S_VERSION``; so do the RayCluster's pod templates.
- Every kustomization is rendered by a small renderer (resources, components, JSON 6902 patches:
  all that ``kuberay/`` uses; anything else fails the test), and the renderings are checked:
  versions agree with ``pyproject.toml``, Secret keys and Services referenced exist, the head pod
  runs the control plane as the issue describes, the workers (where user code runs) hold none of
  the platform's secrets but the package token. Where ``kubectl`` is installed, the renderer's
  output is compared with ``kubectl kustomize``.
- User code stays off the head: every worker group offers each custom resource that the
  sidecar's ``RAYLINE_USER_CODE_RESOURCES`` asks for (read as KubeRay's operator, the shell and
  Ray's autoscaler read ``rayStartParams.resources``), the head none; the head pod is kept from
  voluntary evictions (the cluster autoscaler's safe-to-evict annotation, a PodDisruptionBudget).
- The security defaults (kuberay/README.md, "Security defaults"), on every rendering: every pod
  without a service-account token, non-root as its image's user, seccomp RuntimeDefault; every
  container without capabilities or privilege escalation, on a read-only root filesystem with
  volumes where it writes; the autoscaler alone with Kubernetes API credentials; no Secret on a
  command line (Redis reads its password from a file); an HTTPS-only Ingress with cert-manager;
  NetworkPolicies, checked by a small evaluator: who may reach the head, the workers, PostgreSQL
  and Redis (the head alone, not the workers), on which ports.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from ray.autoscaler._private.kuberay.autoscaling_config import _get_custom_resources

from rayline.config import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "kuberay"
SCHEMA_FILE = KUBERAY / "crds" / "ray.io_rayclusters.v1.schema.json"
SHARED_CRDS = [ROOT.parent / "shared" / "kuberay-crds", Path("/work/shared/kuberay-crds")]
K8S_VERSION = "1.30"
SECRET = "rayline"  # the Secret the platform reads (from one of the database components)
# The kustomizations one applies (the others are Components or the base, applied through these).
ENTRY_POINTS = ["kuberay", "kuberay/overlays/external-database", "kuberay/overlays/ha"]

Obj = dict[str, Any]


# --- loading and rendering --------------------------------------------------------------------


def load_docs(path: Path) -> list[Obj]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def kustomization(directory: Path) -> Obj:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def kustomization_dirs() -> list[Path]:
    return sorted(path.parent for path in KUBERAY.rglob("kustomization.yaml"))


def manifest_files() -> list[Path]:
    """Every YAML file of kuberay/ but the kustomizations (patches included)."""
    return sorted(
        path
        for path in KUBERAY.rglob("*.y*ml")
        if path.name != "kustomization.yaml" and path.suffix in (".yaml", ".yml")
    )


def object_files() -> list[Path]:
    """The manifest files that hold whole objects (a JSON 6902 patch is a list)."""
    return [path for path in manifest_files() if all(isinstance(doc, dict) for doc in load_docs(path))]


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"not a JSON pointer: {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def json_patch(document: Any, operations: list[Obj]) -> Any:
    """RFC 6902 add / remove / replace / test: the operations kuberay/ uses."""
    document = copy.deepcopy(document)
    for operation in operations:
        op, parts = operation["op"], _pointer(operation["path"])
        parent = document
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if isinstance(parent, list):
            index = len(parent) if (last == "-" and op == "add") else int(last)
            if not 0 <= index <= len(parent) - (op != "add"):
                raise IndexError(f"{operation['path']}: index out of range")
        elif op in ("remove", "replace", "test") and last not in parent:
            raise KeyError(f"{operation['path']}: no such member")
        if op == "add":
            if isinstance(parent, list):
                parent.insert(index, copy.deepcopy(operation["value"]))
            else:
                parent[last] = copy.deepcopy(operation["value"])
        elif op == "replace":
            parent[index if isinstance(parent, list) else last] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del parent[index if isinstance(parent, list) else last]
        elif op == "test":
            if parent[index if isinstance(parent, list) else last] != operation["value"]:
                raise AssertionError(f"JSON patch test failed at {operation['path']}")
        else:
            raise NotImplementedError(f"JSON patch op {op!r} is not supported by this test")
    return document


def _group(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _targets(target: Obj, obj: Obj) -> bool:
    group, version = _group(obj["apiVersion"])
    wanted = {"group": group, "version": version, "kind": obj["kind"], "name": obj["metadata"]["name"]}
    return all(wanted[key] == value for key, value in target.items())


SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "components", "patches"}


def render(directory: Path, objects: list[Obj] | None = None, component: bool = False) -> list[Obj]:
    """What ``kustomize build`` makes of ``directory``, for the features kuberay/ uses."""
    spec = kustomization(directory)
    expected = (
        ("kustomize.config.k8s.io/v1alpha1", "Component")
        if component
        else ("kustomize.config.k8s.io/v1beta1", "Kustomization")
    )
    assert (spec.get("apiVersion"), spec.get("kind")) == expected, f"{directory}: not a {expected[1]}"
    unsupported = set(spec) - SUPPORTED_FIELDS
    assert not unsupported, (
        f"{directory}/kustomization.yaml uses {sorted(unsupported)}, which this "
        "test's renderer does not apply: extend render() (and its kubectl check)"
    )
    objects = list(objects or [])
    for entry in spec.get("resources", []):
        path = directory / entry
        objects += render(path) if path.is_dir() else load_docs(path)
    for entry in spec.get("components", []):
        objects = render(directory / entry, objects, component=True)
    for patch in spec.get("patches", []):
        assert set(patch) == {"path", "target"}, f"{directory}: only `path` + `target` patches are supported"
        operations = yaml.safe_load((directory / patch["path"]).read_text())
        assert isinstance(operations, list), f"{patch['path']}: only JSON 6902 patches (a list) are supported"
        matched = [i for i, obj in enumerate(objects) if _targets(patch["target"], obj)]
        assert matched, f"{directory}: patch {patch['path']} matches no object"
        for i in matched:
            objects[i] = json_patch(objects[i], operations)
    ids = [(obj["apiVersion"], obj["kind"], obj["metadata"]["name"]) for obj in objects]
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, f"{directory}: the same object twice (kustomize refuses): {duplicates}"
    return objects


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def the(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [obj for obj in of_kind(objects, kind) if name is None or obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# --- schemas ------------------------------------------------------------------------------------


def strict(schema: Any) -> Any:
    """The schema with every object that lists its properties closed to others (the API server's
    strict field validation), except where the CRD keeps unknown fields on purpose."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


@pytest.fixture(scope="module")
def raycluster_validator() -> jsonschema.Validator:
    schema = strict(json.loads(SCHEMA_FILE.read_text()))
    return jsonschema.Draft7Validator(schema)


def schema_errors(validator: jsonschema.Validator, obj: Obj) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    ]


def pod_templates(cluster: Obj) -> list[tuple[str, Obj]]:
    spec = cluster["spec"]
    return [("head", spec["headGroupSpec"]["template"])] + [
        (group["groupName"], group["template"]) for group in spec.get("workerGroupSpecs", [])
    ]


def k8s_validate(obj: Obj) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


# --- the vendored CRD schema ----------------------------------------------------------------------


def test_vendored_schema_is_the_raycluster_v1_schema():
    schema = json.loads(SCHEMA_FILE.read_text())
    spec = schema["properties"]["spec"]["properties"]
    assert {
        "rayVersion",
        "headGroupSpec",
        "workerGroupSpecs",
        "gcsFaultToleranceOptions",
        "autoscalerOptions",
        "enableInTreeAutoscaling",
    } <= set(spec)
    assert "Apache-2.0" in (KUBERAY / "crds" / "README.md").read_text()
    assert "feeaf72f" in (KUBERAY / "crds" / "README.md").read_text()


def test_vendored_schema_equals_kuberays_crd():
    shared = next((path for path in SHARED_CRDS if (path / "ray.io_rayclusters.yaml").exists()), None)
    if shared is None:
        pytest.skip(f"no KubeRay CRDs beside the checkout ({SHARED_CRDS[0]}): nothing to compare with")
    crd = yaml.safe_load((shared / "ray.io_rayclusters.yaml").read_text())
    assert crd["spec"]["names"]["kind"] == "RayCluster"
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    assert json.loads(SCHEMA_FILE.read_text()) == version["schema"]["openAPIV3Schema"], (
        f"kuberay/crds/ differs from {shared}: refresh it (kuberay/crds/README.md)"
    )


# --- files and kustomizations --------------------------------------------------------------------


def test_every_listed_file_exists_and_every_manifest_is_listed():
    listed: set[Path] = set()
    for directory in kustomization_dirs():
        spec = kustomization(directory)
        for entry in spec.get("resources", []) + spec.get("components", []):
            path = (directory / entry).resolve()
            assert path.exists(), f"{directory}/kustomization.yaml lists {entry}, which does not exist"
            if path.is_dir():
                assert (path / "kustomization.yaml").exists(), f"{entry}: a folder without kustomization.yaml"
            listed.add(path)
        for patch in spec.get("patches", []):
            path = (directory / patch["path"]).resolve()
            assert path.is_file(), f"{directory}/kustomization.yaml patches with {patch['path']}, which does not exist"
            listed.add(path)
    unlisted = [str(path.relative_to(ROOT)) for path in manifest_files() if path.resolve() not in listed]
    assert not unlisted, f"manifests no kustomization lists (kustomize would never apply them): {unlisted}"
    unused = [
        str(path.relative_to(ROOT))
        for path in kustomization_dirs()
        if path.resolve() not in listed and str(path.relative_to(ROOT)) not in ENTRY_POINTS
    ]
    assert not unused, f"kustomizations neither listed by another nor an entry point: {unused}"


def test_every_entry_point_renders_and_the_renderer_refuses_what_it_does_not_know(tmp_path):
    for entry in ENTRY_POINTS:
        assert of_kind(render(ROOT / entry), "RayCluster")
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamePrefix: x-\n"
    )
    with pytest.raises(AssertionError, match="namePrefix"):
        render(tmp_path)


def test_json_patch_helper():
    doc = {"a": [1, 2], "b/c": {"d": 1}}
    assert json_patch(doc, [{"op": "add", "path": "/a/-", "value": 3}])["a"] == [1, 2, 3]
    assert json_patch(doc, [{"op": "add", "path": "/a/0", "value": 0}])["a"] == [0, 1, 2]
    assert json_patch(doc, [{"op": "replace", "path": "/b~1c/d", "value": 2}])["b/c"] == {"d": 2}
    assert json_patch(doc, [{"op": "remove", "path": "/a/1"}])["a"] == [1]
    assert json_patch(doc, [{"op": "add", "path": "/e", "value": {"f": 1}}])["e"] == {"f": 1}
    assert doc == {"a": [1, 2], "b/c": {"d": 1}}  # the input is left alone
    with pytest.raises(AssertionError):
        json_patch(doc, [{"op": "test", "path": "/a/0", "value": 9}])
    with pytest.raises(KeyError):
        json_patch(doc, [{"op": "replace", "path": "/missing", "value": 1}])
    with pytest.raises(IndexError):
        json_patch(doc, [{"op": "replace", "path": "/a/5", "value": 1}])


@pytest.mark.skipif(
    shutil.which("kubectl") is None and shutil.which("kustomize") is None,
    reason="neither kubectl nor kustomize is installed: the renderer is not compared "
    "with kustomize (the other tests still check every rendering)",
)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_renderer_agrees_with_kustomize(entry):
    command = ["kubectl", "kustomize", entry] if shutil.which("kubectl") else ["kustomize", "build", entry]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

    def key(obj: Obj) -> tuple[str, str, str]:
        return obj["apiVersion"], obj["kind"], obj["metadata"]["name"]

    theirs = sorted((doc for doc in yaml.safe_load_all(result.stdout) if doc), key=key)
    ours = sorted(render(ROOT / entry), key=key)
    assert [key(o) for o in ours] == [key(o) for o in theirs]
    assert ours == theirs


# --- schema validation -----------------------------------------------------------------------------


def test_every_raycluster_validates_against_kuberays_schema(raycluster_validator):
    clusters = [
        (str(path.relative_to(ROOT)), doc)
        for path in object_files()
        for doc in load_docs(path)
        if doc.get("apiVersion", "").startswith("ray.io/")
    ]
    clusters += [
        (f"{entry} (rendered)", obj)
        for entry in ENTRY_POINTS
        for obj in render(ROOT / entry)
        if obj["apiVersion"].startswith("ray.io/")
    ]
    assert clusters
    for where, obj in clusters:
        assert (obj["apiVersion"], obj["kind"]) == ("ray.io/v1", "RayCluster"), f"{where}: unexpected kind"
        assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", obj["metadata"]["name"]), where
        assert not schema_errors(raycluster_validator, obj), f"{where}: {schema_errors(raycluster_validator, obj)}"


def test_the_schema_check_fails_on_a_misspelt_field_or_a_wrong_type(raycluster_validator):
    cluster = the(render(KUBERAY), "RayCluster")
    misspelt = copy.deepcopy(cluster)
    misspelt["spec"]["workerGroupSpecs"][0]["minReplica"] = 1
    assert any("minReplica" in error for error in schema_errors(raycluster_validator, misspelt))
    in_a_container = copy.deepcopy(cluster)
    in_a_container["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["environment"] = []
    assert schema_errors(raycluster_validator, in_a_container)
    wrong_type = copy.deepcopy(cluster)
    wrong_type["spec"]["workerGroupSpecs"][0]["maxReplicas"] = "ten"
    assert schema_errors(raycluster_validator, wrong_type)
    wrong_enum = copy.deepcopy(cluster)
    wrong_enum["spec"]["upgradeStrategy"]["type"] = "RollingUpdate"
    assert schema_errors(raycluster_validator, wrong_enum)


def test_core_objects_validate_with_kubernetes_validate():
    objects = [(str(path.relative_to(ROOT)), doc) for path in object_files() for doc in load_docs(path)]
    objects += [(f"{entry} (rendered)", obj) for entry in ENTRY_POINTS for obj in render(ROOT / entry)]
    checked = set()
    for _where, obj in objects:
        if obj["apiVersion"].startswith("ray.io/"):
            for group, template in pod_templates(obj):
                pod_template = {
                    "apiVersion": "v1",
                    "kind": "PodTemplate",
                    "metadata": {"name": f"{obj['metadata']['name']}-{group}"},
                    "template": template,
                }
                k8s_validate(pod_template)
            continue
        k8s_validate(obj)
        checked.add(obj["kind"])
    assert {
        "Service",
        "Secret",
        "Ingress",
        "StatefulSet",
        "Deployment",
        "PersistentVolumeClaim",
        "NetworkPolicy",
        "PodDisruptionBudget",
    } <= checked
    with pytest.raises(kubernetes_validate.ValidationError):
        k8s_validate({**the(render(KUBERAY), "Service", "rayline-serve"), "specs": {}})


# --- what the deployment must be ------------------------------------------------------------------


def ray_pin() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [
        m.group(1)
        for dep in project["dependencies"]
        if (m := re.fullmatch(r"ray(?:\[[^\]]*\])?==([0-9][^;\s]*)", dep.replace(" ", "")))
    ]
    assert len(pins) == 1, "pyproject.toml must pin ray with ray[serve]==X"
    return pins[0]


def dockerfile_python_tag() -> str:
    match = re.search(r"^FROM\s+rayproject/ray:[0-9.]+-(py3\d+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert match, "Dockerfile: no FROM rayproject/ray:X-py3NN"
    return match.group(1)


def containers(template: Obj) -> list[Obj]:
    return template["spec"]["containers"]


def env_of(container: Obj) -> dict[str, Obj]:
    return {item["name"]: item for item in container.get("env", [])}


def from_secret(item: Obj) -> tuple[str, str] | None:
    ref = item.get("valueFrom", {}).get("secretKeyRef")
    return (ref["name"], ref["key"]) if ref else None


def test_versions_agree_with_the_ray_pin():
    pin, python = ray_pin(), dockerfile_python_tag()
    for entry in ENTRY_POINTS:
        cluster = the(render(ROOT / entry), "RayCluster")
        assert cluster["spec"]["rayVersion"] == pin, f"{entry}: rayVersion != pyproject.toml's ray pin {pin}"
        images = [(group, c["image"]) for group, template in pod_templates(cluster) for c in containers(template)]
        if cluster["spec"].get("autoscalerOptions", {}).get("image"):
            images.append(("autoscaler", cluster["spec"]["autoscalerOptions"]["image"]))
        for group, image in images:
            repository, _, tag = image.rpartition(":")
            assert re.search(rf"(^|-)ray{re.escape(pin)}-{python}$", tag), (
                f"{entry}: {group} image {image}: its tag must end ray{pin}-{python} (Dockerfile, pyproject.toml)"
            )
            gpu_group = any(
                "nvidia.com/gpu" in c.get("resources", {}).get("limits", {})
                for g, t in pod_templates(cluster)
                if g == group
                for c in containers(t)
            )
            assert repository.endswith("-gpu") == gpu_group, (
                f"{entry}: {group} must use the {'GPU image (rayline-gpu)' if gpu_group else 'CPU image (rayline)'}"
            )


def test_head_pod_runs_ray_and_the_control_plane():
    objects = render(KUBERAY)
    cluster = the(objects, "RayCluster")
    head = cluster["spec"]["headGroupSpec"]["template"]
    ray_head, *others = containers(head)
    assert ray_head["name"] == "ray-head"  # KubeRay starts Ray in the first container
    sidecar = next(c for c in others if c["name"] == "rayline")
    assert sidecar["image"] == ray_head["image"]
    command = " ".join(sidecar.get("command", []) + sidecar.get("args", []))
    assert re.search(r"exec rayline up --ray-address 127\.0\.0\.1:6379\s*$", command), command
    env = env_of(sidecar)
    assert env["RAYLINE_HTTP_HOST"]["value"] == "0.0.0.0"
    assert env["RAYLINE_HTTP_PORT"]["value"] == "8000"
    assert from_secret(env["RAYLINE_DATABASE_URL"]) == (SECRET, "RAYLINE_DATABASE_URL")
    assert from_secret(env["RAYLINE_SDK_TOKEN"]) == (SECRET, "RAYLINE_SDK_TOKEN")
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/api/v1/health", "port": 8000}

    # RAYLINE_HOME: an emptyDir shared by the sidecar and the head's Ray container (where the
    # control plane's replica runs, placed on the head), with the secret key inside it, from the
    # Secret. The workers have no secret key (test_workers_hold_no_platform_secret).
    home = env["RAYLINE_HOME"]["value"]
    assert home == "/home/ray/rayline"
    volumes = {v["name"]: v for v in head["spec"]["volumes"]}
    for container in (ray_head, sidecar):
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts[home]["name"]], container["name"]
        assert volumes[mounts["/tmp/ray"]["name"]]["name"] == "ray-logs", container["name"]
        key_volume = volumes[mounts[f"{home}/secret-key"]["name"]]["secret"]
        assert key_volume["secretName"] == SECRET
        assert {"key": "RAYLINE_SECRET_KEY", "path": mounts[f"{home}/secret-key"]["subPath"]} in key_volume["items"]

    # RAYLINE_PACKAGE_URL_BASE: a Service in front of the head pod's Serve port.
    url = urlsplit(env["RAYLINE_PACKAGE_URL_BASE"]["value"])
    assert (url.scheme, url.port, url.path) == ("http", 8000, "")
    service = the(objects, "Service", url.hostname)
    assert service["spec"]["selector"] == {"ray.io/cluster": cluster["metadata"]["name"], "ray.io/node-type": "head"}
    assert [p["port"] for p in service["spec"]["ports"]] == [8000]
    assert {"name": "serve", "containerPort": 8000} in ray_head["ports"]


def test_every_ray_container_has_the_ray_environment():
    cluster = the(render(KUBERAY), "RayCluster")
    ray_containers = [(group, containers(template)[0]) for group, template in pod_templates(cluster)]
    sidecar = next(c for c in containers(cluster["spec"]["headGroupSpec"]["template"]) if c["name"] == "rayline")
    for where, container in ray_containers + [("head sidecar", sidecar)]:
        env = env_of(container)
        assert env["RAY_SERVE_ENABLE_HA_PROXY"]["value"] == "1", where
        assert env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"]["value"] == "3", where
        assert env["RAY_AUTH_MODE"]["value"] == "token", where
        assert from_secret(env["RAY_AUTH_TOKEN"]) == (SECRET, "RAY_AUTH_TOKEN"), where
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
    # The processes that download pipeline packages send the package token, which the control
    # plane is given too (not the SDK token: user code can read this environment).
    assert from_secret(env_of(sidecar)["RAYLINE_PACKAGE_TOKEN"]) == (SECRET, "RAYLINE_PACKAGE_TOKEN")
    for where, container in ray_containers:
        assert from_secret(env_of(container)["RAY_RUNTIME_ENV_BEARER_TOKEN"]) == (SECRET, "RAYLINE_PACKAGE_TOKEN"), (
            where
        )
        assert "RAYLINE_SDK_TOKEN" not in str(container), where
        # The secret key: for the control plane, on the head only.
        has_key = "/home/ray/rayline/secret-key" in {m["mountPath"] for m in container["volumeMounts"]}
        assert has_key == (where == "head"), where
    autoscaler_env = {item["name"]: item for item in cluster["spec"]["autoscalerOptions"]["env"]}
    assert autoscaler_env["RAY_AUTH_MODE"]["value"] == "token"
    assert from_secret(autoscaler_env["RAY_AUTH_TOKEN"]) == (SECRET, "RAY_AUTH_TOKEN")
    for _, template in pod_templates(cluster):
        assert template["spec"]["securityContext"]["runAsNonRoot"] is True
        assert template["spec"]["securityContext"]["runAsUser"] != 0


# The keys of the Secret `rayline` that user code must not get: the database, the SDK, the secret
# key, and the package token but as Ray's download credential. User code runs on the workers
# (elastic executions, low-latency pods); they record through the control plane on the head.
PLATFORM_KEYS = {"RAYLINE_DATABASE_URL", "RAYLINE_SDK_TOKEN", "RAYLINE_PACKAGE_TOKEN", "RAYLINE_SECRET_KEY"}
# The one exception, on every node: Ray sends it to download pipeline packages, and it opens
# nothing but the package downloads.
WORKER_SECRET_ENV_ALLOWED = {("RAY_RUNTIME_ENV_BEARER_TOKEN", "RAYLINE_PACKAGE_TOKEN")}


def platform_secrets_in(template: Obj) -> list[str]:
    """What of the platform's secrets (PLATFORM_KEYS of the Secret `rayline`) a pod template gives
    its containers, beyond WORKER_SECRET_ENV_ALLOWED: volumes, projected volumes, env and envFrom."""
    spec = template["spec"]
    found = []
    for volume in spec.get("volumes", []):
        sources = (
            [volume["secret"]]
            if "secret" in volume
            else [source["secret"] for source in volume.get("projected", {}).get("sources", []) if "secret" in source]
        )
        for source in sources:
            name = source.get("secretName", source.get("name"))
            if name != SECRET:
                continue
            keys = {item["key"] for item in source.get("items", [])}
            if not source.get("items") or keys & PLATFORM_KEYS:  # without items: every key of the Secret
                found.append(
                    f"volume {volume['name']}: {sorted(keys & PLATFORM_KEYS) or 'every key'} of Secret {SECRET}"
                )
    for container in spec["containers"] + spec.get("initContainers", []):
        for item in container.get("env", []):
            ref = from_secret(item)
            if item["name"] in PLATFORM_KEYS and not ref:
                found.append(f"container {container['name']}: env {item['name']}")
            if (
                ref
                and ref[0] == SECRET
                and ref[1] in PLATFORM_KEYS
                and (item["name"], ref[1]) not in WORKER_SECRET_ENV_ALLOWED
            ):
                found.append(f"container {container['name']}: env {item['name']} from {ref}")
        for source in container.get("envFrom", []):
            if source.get("secretRef", {}).get("name") == SECRET:
                found.append(f"container {container['name']}: envFrom Secret {SECRET} (every key)")
        for mount in container.get("volumeMounts", []):
            if mount["mountPath"].rstrip("/").endswith("/secret-key"):
                found.append(f"container {container['name']}: a mount at {mount['mountPath']}")
    return found


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_workers_hold_no_platform_secret(entry):
    """User code runs on the workers: they mount no secret key and get neither the database URL nor
    the SDK token; of the package token, only Ray's RAY_RUNTIME_ENV_BEARER_TOKEN. The head keeps
    the secret key (the control plane runs there)."""
    cluster = the(render(ROOT / entry), "RayCluster")
    workers = [(group, template) for group, template in pod_templates(cluster) if group != "head"]
    assert {group for group, _ in workers} == {"cpu", "gpu"}
    for group, template in workers:
        assert not platform_secrets_in(template), f"{entry}: {group}: {platform_secrets_in(template)}"
        ray_worker = containers(template)[0]
        allowed = {
            (item["name"], from_secret(item)[1])
            for item in ray_worker["env"]
            if from_secret(item) and from_secret(item)[0] == SECRET and from_secret(item)[1] in PLATFORM_KEYS
        }
        assert allowed == WORKER_SECRET_ENV_ALLOWED, f"{entry}: {group}: {allowed}"
        volumes = {v["name"] for v in template["spec"]["volumes"]}
        assert "rayline-home" in volumes and "rayline-secret-key" not in volumes, f"{entry}: {group}"
    # The head: the secret key and the sidecar's database URL and SDK token are there, as they must be.
    head = cluster["spec"]["headGroupSpec"]["template"]
    assert any("secret key" in line or "RAYLINE_SECRET_KEY" in line for line in platform_secrets_in(head))
    assert any("RAYLINE_DATABASE_URL" in line for line in platform_secrets_in(head))


def test_the_platform_secret_check_finds_what_it_looks_for():
    cluster = the(render(KUBERAY), "RayCluster")
    head = cluster["spec"]["headGroupSpec"]["template"]
    key_volume = next(v for v in head["spec"]["volumes"] if v["name"] == "rayline-secret-key")
    key_mount = next(m for m in containers(head)[0]["volumeMounts"] if m["name"] == "rayline-secret-key")
    worker = cluster["spec"]["workerGroupSpecs"][0]["template"]
    assert not platform_secrets_in(worker)

    def changed(edit) -> list[str]:
        template = copy.deepcopy(worker)
        edit(template["spec"], template["spec"]["containers"][0])
        return platform_secrets_in(template)

    assert changed(lambda spec, c: spec["volumes"].append(key_volume))
    assert changed(lambda spec, c: c["volumeMounts"].append(key_mount))
    assert changed(lambda spec, c: spec["volumes"].append({"name": "all", "secret": {"secretName": SECRET}}))
    assert changed(
        lambda spec, c: spec["volumes"].append(
            {
                "name": "p",
                "projected": {
                    "sources": [{"secret": {"name": SECRET, "items": [{"key": "RAYLINE_SDK_TOKEN", "path": "t"}]}}]
                },
            }
        )
    )
    for key in sorted(PLATFORM_KEYS):
        assert changed(
            lambda spec, c, key=key: c["env"].append(
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}
            )
        ), key
    assert changed(lambda spec, c: c["env"].append({"name": "RAYLINE_DATABASE_URL", "value": "postgresql://..."}))
    assert changed(lambda spec, c: c.setdefault("envFrom", []).append({"secretRef": {"name": SECRET}}))
    # Ray's own token and the package token as Ray's download credential stay allowed.
    assert not changed(lambda spec, c: None)


def test_autoscaled_cpu_and_gpu_worker_groups():
    spec = the(render(KUBERAY), "RayCluster")["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]
    assert spec["upgradeStrategy"]["type"] == "Recreate"
    groups = {group["groupName"]: group for group in spec["workerGroupSpecs"]}

    def gpus(group: Obj) -> int:
        return int(containers(group["template"])[0]["resources"].get("limits", {}).get("nvidia.com/gpu", 0))

    gpu = [g for g in groups.values() if gpus(g) > 0]
    cpu = [g for g in groups.values() if gpus(g) == 0]
    assert len(gpu) == 1 and len(cpu) == 1, sorted(groups)
    assert gpu[0]["minReplicas"] == 0 and gpu[0].get("replicas", 0) == 0 and gpu[0]["maxReplicas"] >= 1
    assert cpu[0]["maxReplicas"] >= cpu[0]["minReplicas"] >= 0
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


# --- user code on the workers only; the head kept ------------------------------------------------

# Ray's own resources, which RAYLINE_USER_CODE_RESOURCES may not name (nor `ray start --resources`).
RAY_STANDARD_RESOURCES = {"CPU", "GPU", "memory", "object_store_memory"}


def kuberay_operator_resources(value: str) -> dict[str, float]:
    """rayStartParams.resources as KubeRay's operator reads it (it adds accelerators to it):
    ray-operator/controllers/ray/common/pod.go, getResourcesMap: the quotes, backquotes and blanks
    around it trimmed, then JSON."""
    resources = json.loads(value.strip("'\"` "))
    assert isinstance(resources, dict), value
    return resources


def ray_start_resources(value: str) -> dict[str, float]:
    """What `ray start` gets: KubeRay writes ` --resources=<value> ` into the bash command line of
    the Ray container, and `ray start` reads the word as JSON (ray._private.utils.parse_resources_json)."""
    words = shlex.split(f"ray start --resources={value} --block")
    assert len(words) == 4, f"--resources={value} is not one word to the shell: {words}"
    resources = json.loads(words[2].removeprefix("--resources="))
    assert isinstance(resources, dict), value
    return resources


def offered_resources(group: Obj, name: str) -> dict[str, float]:
    """The custom resources a Ray group's nodes offer, read the three ways it is read, which must
    agree: by KubeRay's operator, by `ray start`, and by Ray's autoscaler (Ray's own function, which
    also wants integers). None offered: {}."""
    params = group.get("rayStartParams", {})
    # The group's top-level `resources` replaces rayStartParams.resources, in the operator and in
    # the autoscaler alike: the manifests keep to one place.
    assert "resources" not in group, f"{name}: set custom resources in rayStartParams only"
    if "resources" not in params:
        return {}
    value = params["resources"]
    seen = {
        "KubeRay's operator": kuberay_operator_resources(value),
        "ray start": ray_start_resources(value),
        "Ray's autoscaler": _get_custom_resources({}, params, name),
    }
    assert all(resources == seen["ray start"] for resources in seen.values()), f"{name}: {value}: {seen}"
    assert not set(seen["ray start"]) & RAY_STANDARD_RESOURCES, f"{name}: {value}"
    return seen["ray start"]


def test_the_resources_check_reads_ray_start_params_as_kuberay_ray_and_the_autoscaler_do():
    group = {"groupName": "g", "rayStartParams": {"resources": '\'{"a": 2, "b": 1000}\''}}
    assert offered_resources(group, "g") == {"a": 2, "b": 1000}
    assert offered_resources({"groupName": "h", "rayStartParams": {}}, "h") == {}
    # The form of older examples: Ray's autoscaler and the shell read it, KubeRay's operator does not.
    older = {"groupName": "g", "rayStartParams": {"resources": '"{\\"a\\": 2}"'}}
    assert ray_start_resources(older["rayStartParams"]["resources"]) == {"a": 2}
    with pytest.raises(json.JSONDecodeError):
        offered_resources(older, "g")
    with pytest.raises(AssertionError, match="one word"):  # unquoted: the shell splits it
        offered_resources({"groupName": "g", "rayStartParams": {"resources": '{"a": 2, "b": 1}'}}, "g")
    with pytest.raises(AssertionError):  # the autoscaler wants integers
        offered_resources({"groupName": "g", "rayStartParams": {"resources": "'{\"a\": 0.5}'"}}, "g")
    with pytest.raises(AssertionError, match="rayStartParams only"):
        offered_resources({"groupName": "g", "rayStartParams": {}, "resources": {"a": "1"}}, "g")


def sidecar_of(cluster: Obj) -> Obj:
    return next(c for c in containers(cluster["spec"]["headGroupSpec"]["template"]) if c["name"] == "rayline")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_user_code_runs_on_the_workers_only(entry, monkeypatch):
    """Every process that runs user code asks Ray for RAYLINE_USER_CODE_RESOURCES (set in the
    sidecar, whose `rayline up` hands its settings to the control plane): every worker group offers
    each of them, so that pods and executions can be placed there and the autoscaler adds a worker
    of either group for them; the head offers none, so none is placed on it."""
    objects = render(ROOT / entry)
    cluster = the(objects, "RayCluster")
    env = env_of(sidecar_of(cluster))
    # The sidecar's settings, as the platform reads them (its own validation included); for the
    # Secret's tokens, whose committed values are placeholders too short for a token, stand-ins.
    for name in [name for name in os.environ if name.startswith("RAYLINE_")]:
        monkeypatch.delenv(name)
    for name, item in env.items():
        if name == "RAYLINE_DATABASE_URL":
            monkeypatch.setenv(name, "postgresql+psycopg://rayline:password@rayline-postgres:5432/rayline")
        elif name.startswith("RAYLINE_"):
            monkeypatch.setenv(name, item.get("value", f"stand-in-for-{name.lower()}"))
    asked = Settings().user_code_resources
    assert asked, f"{entry}: the sidecar sets no RAYLINE_USER_CODE_RESOURCES: user code may run on the head"
    assert asked == json.loads(env["RAYLINE_USER_CODE_RESOURCES"]["value"])

    for group in cluster["spec"]["workerGroupSpecs"]:
        offered = offered_resources(group, group["groupName"])
        for name, amount in asked.items():
            assert name in offered, f"{entry}: group {group['groupName']} does not offer {name!r}"
            # Enough for many processes on a node: the resource picks nodes, it must not limit them.
            assert offered[name] >= 1000 * amount, f"{entry}: group {group['groupName']}: {offered} for {asked}"
    head = cluster["spec"]["headGroupSpec"]
    assert not set(offered_resources(head, "head")) & set(asked), f"{entry}: the head offers user code's resources"
    # Nor does the head's Ray container get them another way (Ray reads RAY_OVERRIDE_RESOURCES).
    ray_head = containers(head["template"])[0]
    assert "RAY_OVERRIDE_RESOURCES" not in env_of(ray_head), entry


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_the_head_pod_is_kept_from_voluntary_evictions(entry):
    """The head (the GCS and the control plane) is one pod: the cluster autoscaler never evicts it
    to empty a node, and a PodDisruptionBudget holds a drain until an operator moves it."""
    objects = render(ROOT / entry)
    cluster = the(objects, "RayCluster")
    head_template = cluster["spec"]["headGroupSpec"]["template"]
    annotations = head_template["metadata"].get("annotations", {})
    assert annotations.get("cluster-autoscaler.kubernetes.io/safe-to-evict") == "false", entry
    for group in cluster["spec"]["workerGroupSpecs"]:  # workers come and go with Ray's autoscaler
        assert "cluster-autoscaler.kubernetes.io/safe-to-evict" not in group["template"]["metadata"].get(
            "annotations", {}
        ), f"{entry}: {group['groupName']}"

    budgets = of_kind(objects, "PodDisruptionBudget")
    head = ray_pod_labels(cluster, "headgroup", head_template, "head")
    holding = [pdb for pdb in budgets if selects(pdb["spec"]["selector"], head)]
    assert len(holding) == 1, f"{entry}: {len(holding)} PodDisruptionBudgets select the head pod"
    (pdb,) = holding
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1 and "maxUnavailable" not in pdb["spec"], pdb["spec"]
    # By the labels KubeRay sets itself: no worker (nor the Redis cleanup Job) is held, whatever
    # its template says.
    assert set(pdb["spec"]["selector"]) == {"matchLabels"}
    assert pdb["spec"]["selector"]["matchLabels"] == {
        "ray.io/cluster": cluster["metadata"]["name"],
        "ray.io/node-type": "head",
    }
    for group in cluster["spec"]["workerGroupSpecs"]:
        disguised = copy.deepcopy(group["template"])
        disguised["metadata"]["labels"] = {**disguised["metadata"].get("labels", {}), "ray.io/node-type": "head"}
        worker = ray_pod_labels(cluster, group["groupName"], disguised, "worker")
        assert not any(selects(b["spec"]["selector"], worker) for b in budgets), f"{entry}: {group['groupName']}"
    assert not any(selects(b["spec"]["selector"], {**head, "ray.io/node-type": "redis-cleanup"}) for b in budgets)


def test_readme_says_where_user_code_runs_and_what_node_loss_does():
    readme = README.read_text()
    trusted = readme.split("### What stays trusted", 1)[1].split("\n## ", 1)[0]
    for words in ("RAYLINE_USER_CODE_RESOURCES", "rayline-user-code", "node:__internal_head__", "secret key"):
        assert words in trusted, f"kuberay/README.md, What stays trusted: say something about {words}"
    assert "Known limit: user code on the head" not in readme  # closed by RAYLINE_USER_CODE_RESOURCES
    node_loss = readme.split("Node loss: what a user sees", 1)
    assert len(node_loss) == 2, "kuberay/README.md: no section `Node loss: what a user sees`"
    text = node_loss[1].split("\n## ", 1)[0]
    for words in (
        "RAYLINE_REPLY_AFTER_COMMIT",
        "Error",
        "PostgreSQL",
        "gcs-ft-redis",
        "safe-to-evict",
        "PodDisruptionBudget",
        "kubectl drain",
    ):
        assert words in text, f"kuberay/README.md, Node loss: say something about {words}"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_references_resolve(entry):
    """Every Secret key, Service, claim and Redis address that an object names is in the rendering."""
    objects = render(ROOT / entry)
    secrets = {
        obj["metadata"]["name"]: set(obj.get("stringData", {})) | set(obj.get("data", {}))
        for obj in of_kind(objects, "Secret")
    }
    assert SECRET in secrets, f"{entry}: no Secret {SECRET!r}: combine base/ with a database component"
    claims = {obj["metadata"]["name"] for obj in of_kind(objects, "PersistentVolumeClaim")}
    services = {
        obj["metadata"]["name"]: {p["port"] for p in obj["spec"]["ports"]} for obj in of_kind(objects, "Service")
    }

    def walk(node: Any):
        if isinstance(node, dict):
            yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    for obj in objects:
        where = f"{entry}: {obj['kind']} {obj['metadata']['name']}"
        for node in walk(obj):
            if "secretKeyRef" in node:
                ref = node["secretKeyRef"]
                assert ref["key"] in secrets.get(ref["name"], set()), (
                    f"{where}: no key {ref['key']} in Secret {ref['name']}"
                )
            if "secret" in node and isinstance(node["secret"], dict) and "secretName" in node["secret"]:
                for item in node["secret"].get("items", []):
                    assert item["key"] in secrets.get(node["secret"]["secretName"], set()), f"{where}: {item}"
            if "persistentVolumeClaim" in node:
                assert node["persistentVolumeClaim"]["claimName"] in claims, f"{where}: {node}"
            if "service" in node and isinstance(node["service"], dict) and "port" in node["service"]:
                assert node["service"]["port"]["number"] in services.get(node["service"]["name"], set()), (
                    f"{where}: {node}"
                )
    for obj in of_kind(objects, "StatefulSet") + of_kind(objects, "Deployment"):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items()
    workload_labels = [
        obj["spec"]["template"]["metadata"]["labels"]
        for obj in of_kind(objects, "StatefulSet") + of_kind(objects, "Deployment")
    ]
    cluster_name = the(objects, "RayCluster")["metadata"]["name"]
    for service in of_kind(objects, "Service"):
        selector = service["spec"]["selector"]
        kuberay_pod = selector.get("ray.io/cluster") == cluster_name and selector.get("ray.io/node-type") in (
            "head",
            "worker",
        )
        assert kuberay_pod or any(selector.items() <= labels.items() for labels in workload_labels), (
            f"{entry}: Service {service['metadata']['name']} selects no pod"
        )
    ft = the(objects, "RayCluster")["spec"].get("gcsFaultToleranceOptions")
    if ft:
        host, _, port = ft["redisAddress"].partition(":")
        assert int(port) in services.get(host, set()), f"{entry}: redisAddress {ft['redisAddress']} is no Service"


def test_ingress_routes_the_api_the_endpoints_and_the_console_to_the_serve_port():
    ingress = the(render(KUBERAY), "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    routes = {
        (path["path"], path["pathType"]): (
            path["backend"]["service"]["name"],
            path["backend"]["service"]["port"]["number"],
        )
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    console = [("/", "Exact"), ("/login", "Exact"), ("/logout", "Exact"), ("/deployments", "Prefix")]
    console += [("/executions", "Prefix"), ("/pipelines", "Prefix"), ("/console/static", "Prefix")]
    assert routes == {
        (path, kind): ("rayline-serve", 8000)
        for path, kind in [("/api/v1", "Prefix"), ("/endpoints", "Prefix"), *console]
    }
    dashboard = the(render(KUBERAY), "Service", "rayline-dashboard")
    assert [p["port"] for p in dashboard["spec"]["ports"]] == [8265]


def test_database_choices():
    default = render(KUBERAY)
    statefulset = the(default, "StatefulSet", "rayline-postgres")
    postgres = containers(statefulset["spec"]["template"])[0]
    assert postgres["image"] == "postgres:16"
    assert statefulset["spec"]["volumeClaimTemplates"]
    secret = the(default, "Secret", SECRET)["stringData"]
    url = urlsplit(secret["RAYLINE_DATABASE_URL"])
    env = env_of(postgres)
    assert url.scheme == "postgresql+psycopg"
    assert (url.username, url.hostname, url.port, url.path) == (
        env["POSTGRES_USER"]["value"],
        "rayline-postgres",
        5432,
        "/" + env["POSTGRES_DB"]["value"],
    )
    assert url.password == secret["POSTGRES_PASSWORD"]
    assert the(default, "Service", "rayline-postgres")

    external = render(ROOT / "kuberay/overlays/external-database")
    assert not of_kind(external, "StatefulSet")
    assert (
        urlsplit(the(external, "Secret", SECRET)["stringData"]["RAYLINE_DATABASE_URL"]).scheme == "postgresql+psycopg"
    )


def test_committed_secrets_hold_placeholders_only():
    for path in object_files():
        for doc in load_docs(path):
            if doc["kind"] == "Secret":
                assert "data" not in doc, f"{path}: use stringData placeholders"
                for key, value in doc["stringData"].items():
                    assert "CHANGE-ME" in value, f"{path}: {key} is not a placeholder"
                assert "must be replaced" in path.read_text(), f"{path}: say that the values must be replaced"


def test_gcs_fault_tolerance_component():
    base_cluster = the(render(KUBERAY), "RayCluster")
    assert "gcsFaultToleranceOptions" not in base_cluster["spec"]
    objects = render(ROOT / "kuberay/overlays/ha")
    options = the(objects, "RayCluster")["spec"]["gcsFaultToleranceOptions"]
    assert options["redisAddress"] == "rayline-redis:6379"
    assert from_secret(options["redisPassword"]) == ("rayline-redis", "REDIS_PASSWORD")
    redis = the(objects, "Deployment", "rayline-redis")
    assert containers(redis["spec"]["template"])[0]["image"].startswith("redis:")
    assert the(objects, "Service", "rayline-redis")


# --- security defaults (kuberay/README.md, "Security defaults") ---------------------------------

# The user each image runs as: the rayline images keep the Ray base image's `ray` (Dockerfile:
# USER 1000:100); the official postgres and redis images run as their `postgres` / `redis` (999).
IMAGE_USERS = {"rayline": 1000, "rayline-gpu": 1000, "postgres": 999, "redis": 999}
# Containers whose root filesystem may stay writable, as (pod, container) -> why they must write
# to their image's filesystem (where no emptyDir can stand in), e.g.
# ("RayCluster rayline gpu", "ray-worker"): "...". None today: Ray, the control plane, the
# autoscaler, PostgreSQL and Redis all write to volumes only. Add an entry only with its reason.
WRITABLE_ROOT_ALLOWED: dict[tuple[str, str], str] = {}
# What each image writes, and therefore mounts from an emptyDir or a volume claim (its root
# filesystem being read-only).
WRITABLE_PATHS = {
    "rayline": [
        "/tmp",
        "/home/ray/.cache",
        "/home/ray/rayline",
    ],  # tempfile, Ray's /tmp/ray, HAProxy; caches; RAYLINE_HOME
    "rayline-gpu": ["/tmp", "/home/ray/.cache", "/home/ray/rayline"],
    "postgres": [
        "/var/lib/postgresql/data",
        "/var/run/postgresql",
        "/tmp",
    ],  # data; socket and lock; the entrypoint's shell
    "redis": ["/data"],  # the append-only file
}
AUTOSCALER = "autoscaler"  # the container KubeRay adds to the head pod from spec.autoscalerOptions
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
# The namespace of the ingress controller (ingress-nginx's manifests and chart install it there),
# which rayline-head-from-ingress lets reach the head's Serve port; kuberay/README.md names it.
INGRESS_NAMESPACE = "ingress-nginx"
README = KUBERAY / "README.md"


def image_name(image: str) -> str:
    repository = image.rpartition(":")[0] if ":" in image.rsplit("/", 1)[-1] else image
    return repository.rsplit("/", 1)[-1]


def pods(objects: list[Obj]) -> list[tuple[str, Obj, Obj, list[Obj]]]:
    """(where, owner, pod spec, containers) for every pod template of the rendering. Containers include
    the init containers and, for a RayCluster's head, the autoscaler container that KubeRay builds
    from spec.autoscalerOptions (the head's image, the options' securityContext and volumeMounts)."""
    found = []
    for obj in objects:
        name = f"{obj['kind']} {obj['metadata']['name']}"
        if obj["kind"] == "RayCluster":
            for group, template in pod_templates(obj):
                spec = template["spec"]
                listed = spec["containers"] + spec.get("initContainers", [])
                if group == "head" and obj["spec"].get("enableInTreeAutoscaling"):
                    options = obj["spec"].get("autoscalerOptions", {})
                    listed = listed + [
                        {
                            "name": AUTOSCALER,
                            "image": options.get("image", spec["containers"][0]["image"]),
                            "securityContext": options.get("securityContext"),
                            "volumeMounts": options.get("volumeMounts", []),
                        }
                    ]
                found.append((f"{name} {group}", obj, spec, listed))
        elif obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
            spec = obj["spec"]["template"]["spec"]
            found.append((name, obj, spec, spec["containers"] + spec.get("initContainers", [])))
        elif obj["kind"] in ("Pod", "CronJob"):
            raise AssertionError(f"{name}: extend pods() to check this kind")
    return found


def writable_volumes(obj: Obj, spec: Obj) -> set[str]:
    """The volumes of a pod that a container can write to: emptyDirs and volume claims."""
    claims = {template["metadata"]["name"] for template in obj.get("spec", {}).get("volumeClaimTemplates", [])}
    return claims | {
        volume["name"]
        for volume in spec.get("volumes", [])
        if "emptyDir" in volume or "persistentVolumeClaim" in volume
    }


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_pod_runs_unprivileged_without_a_token(entry):
    objects = render(ROOT / entry)
    checked = []
    for where, owner, spec, listed in pods(objects):
        assert spec.get("automountServiceAccountToken") is False, f"{entry}: {where}: automountServiceAccountToken"
        assert not (spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC")), f"{entry}: {where}"
        context = spec.get("securityContext", {})
        assert context.get("runAsNonRoot") is True, f"{entry}: {where}: runAsNonRoot"
        assert context.get("seccompProfile") == {"type": "RuntimeDefault"}, f"{entry}: {where}: seccompProfile"
        users = {IMAGE_USERS[image_name(c["image"])] for c in listed}
        assert users == {context.get("runAsUser")}, (
            f"{entry}: {where}: runAsUser {context.get('runAsUser')} is not the images' user {users}"
        )
        assert isinstance(context.get("fsGroup"), int) and context.get("runAsGroup") == context["fsGroup"], (
            f"{entry}: {where}: fsGroup (the volumes' group) must be the user's group"
        )
        writable = writable_volumes(owner, spec)
        for container in listed:
            what = f"{entry}: {where}: container {container['name']}"
            sc = container.get("securityContext") or {}
            assert sc.get("allowPrivilegeEscalation") is False, f"{what}: allowPrivilegeEscalation"
            assert sc.get("capabilities") == {"drop": ["ALL"]}, f"{what}: capabilities must drop ALL and add none"
            assert not sc.get("privileged"), what
            assert sc.get("runAsUser", context["runAsUser"]) != 0 and sc.get("runAsNonRoot", True) is True, what
            assert sc.get("seccompProfile", {"type": "RuntimeDefault"}) == {"type": "RuntimeDefault"}, what
            if (where, container["name"]) in WRITABLE_ROOT_ALLOWED:
                assert WRITABLE_ROOT_ALLOWED[where, container["name"]].strip(), f"{what}: say why it stays writable"
            else:
                assert sc.get("readOnlyRootFilesystem") is True, f"{what}: readOnlyRootFilesystem"
                # What it writes must then be on a writable volume.
                mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
                paths = ["/tmp"] if container["name"] == AUTOSCALER else WRITABLE_PATHS[image_name(container["image"])]
                for path in paths:
                    assert path in mounts and not mounts[path].get("readOnly"), f"{what}: no writable volume at {path}"
                    assert mounts[path]["name"] in writable, f"{what}: {path} is not an emptyDir or a volume claim"
            checked.append((where, container["name"]))
    assert any(c == AUTOSCALER for _, c in checked)
    kinds = {where.split(" ")[0] for where, _ in checked}
    assert "RayCluster" in kinds and ({"StatefulSet", "Deployment"} & kinds or entry.endswith("external-database"))


def test_only_the_autoscaler_gets_a_kubernetes_api_token():
    """The autoscaler patches the RayCluster and deletes pods: its credentials are in its container
    alone, not in those where pipeline code runs (or Ray's own processes)."""
    cluster = the(render(KUBERAY), "RayCluster")
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]
    tokens = {
        v["name"]: v
        for v in head["volumes"]
        if any("serviceAccountToken" in source for source in v.get("projected", {}).get("sources", []))
    }
    assert len(tokens) == 1, tokens
    ((name, volume),) = tokens.items()
    paths = {
        item.get("path")
        for source in volume["projected"]["sources"]
        for part in source.values()
        for item in ([part] if "path" in part else part.get("items", []))
    }
    assert {"token", "ca.crt", "namespace"} <= paths  # what Ray's KubeRay node provider reads
    mounts = [m for m in cluster["spec"]["autoscalerOptions"]["volumeMounts"] if m["name"] == name]
    assert mounts == [{"name": name, "mountPath": SERVICE_ACCOUNT_MOUNT, "readOnly": True}]
    for group, template in pod_templates(cluster):
        for container in template["spec"]["containers"] + template["spec"].get("initContainers", []):
            names = {m["name"] for m in container.get("volumeMounts", [])}
            paths = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert name not in names and SERVICE_ACCOUNT_MOUNT not in paths, f"{group}: {container['name']}"
        if group != "head":
            assert not any("projected" in v for v in template["spec"].get("volumes", [])), group


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_no_secret_on_a_command_line(entry):
    """A process's arguments are visible (ps, /proc/PID/cmdline) to every process of the pod: no
    container passes a Secret's value in its command, args or probe commands, neither written out
    nor as a $(VAR) expansion of an environment variable from a Secret."""
    objects = render(ROOT / entry)
    values = {value for secret in of_kind(objects, "Secret") for value in secret.get("stringData", {}).values()}
    for where, _, _, listed in pods(objects):
        for container in listed:
            what = f"{entry}: {where}: container {container['name']}"
            from_secrets = {item["name"] for item in container.get("env", []) if from_secret(item)}
            lines = list(container.get("command", [])) + list(container.get("args", []))
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                lines += container.get(probe, {}).get("exec", {}).get("command", [])
            for hook in container.get("lifecycle", {}).values():
                lines += hook.get("exec", {}).get("command", [])
            text = "\n".join(lines)
            for name in from_secrets:
                assert f"$({name})" not in text, f"{what}: $({name}) puts a Secret on the command line"
            assert not any(value in text for value in values), f"{what}: a Secret's value on the command line"
            assert "--requirepass" not in text and not re.search(
                r"redis-cli\b[^\n|;]*\s(-a|--pass|--user|-u)\s", text
            ), what
    ft = the(objects, "RayCluster")["spec"].get("gcsFaultToleranceOptions")
    assert "redis-password" not in the(objects, "RayCluster")["spec"]["headGroupSpec"]["rayStartParams"]
    if not ft:
        return
    # Redis reads its password from a configuration file that its start script writes, from the
    # environment, onto a memory volume; redis-cli (the readiness probe) from REDISCLI_AUTH.
    deployment = the(objects, "Deployment", "rayline-redis")
    spec = deployment["spec"]["template"]["spec"]
    redis = containers(deployment["spec"]["template"])[0]
    assert (
        from_secret(env_of(redis)["REDISCLI_AUTH"])
        == from_secret(ft["redisPassword"])
        == ("rayline-redis", "REDIS_PASSWORD")
    )
    script = "\n".join(redis.get("command", []) + redis.get("args", []))
    config = re.search(r"^\s*exec redis-server (\S+)\s*$", script, re.M)
    assert config, script
    assert re.search(
        rf"""printf 'requirepass %s\\n[^']*' "\$REDISCLI_AUTH" > {re.escape(config.group(1))}""", script
    ), script
    mounts = {m["mountPath"]: m["name"] for m in redis["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    directory = config.group(1).rsplit("/", 1)[0]
    assert volumes[mounts[directory]]["emptyDir"].get("medium") == "Memory", "the file with the password: on a tmpfs"
    assert "redis-cli" in " ".join(redis["readinessProbe"]["exec"]["command"])


def test_ingress_is_https_only():
    ingress = the(render(KUBERAY), "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations.get("cert-manager.io/cluster-issuer"), "cert-manager issues the certificate"
    assert annotations["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    tls = ingress["spec"]["tls"]
    assert tls and all(entry.get("secretName") and entry.get("hosts") for entry in tls)
    hosts = {host for entry in tls for host in entry["hosts"]}
    assert all(rule.get("host") in hosts for rule in ingress["spec"]["rules"]), "every routed host has a certificate"
    readme = README.read_text()
    assert "cert-manager.io/cluster-issuer" in readme
    assert all(f"kubectl create secret tls {entry['secretName']}" in readme for entry in tls)


# A small NetworkPolicy evaluator (ingress only: the manifests leave egress open, kuberay/README.md
# says why), for the pods the rendering makes and a few others.

NAMESPACE = "rayline"  # any name: the manifests name none, the policies hold in the namespace they are applied to


def namespace_labels(name: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": name}  # the label Kubernetes puts on every namespace


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if not {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]:
            return False
    return True


def peer_matches(peer: Obj, labels: dict[str, str], namespace: str) -> bool:
    assert "ipBlock" not in peer, "ipBlock peers: extend the evaluator"
    if "namespaceSelector" not in peer:  # a podSelector alone: pods of the policy's own namespace
        return namespace == NAMESPACE and selects(peer["podSelector"], labels)
    return selects(peer["namespaceSelector"], namespace_labels(namespace)) and selects(
        peer.get("podSelector", {}), labels
    )


def port_matches(ports: list[Obj] | None, port: int) -> bool:
    if not ports:
        return True
    for entry in ports:
        assert isinstance(entry.get("port", 0), int), "named ports: extend the evaluator"
        if entry.get("protocol", "TCP") == "TCP" and (
            "port" not in entry or entry["port"] <= port <= entry.get("endPort", entry["port"])
        ):
            return True
    return False


def may_connect(policies: list[Obj], source: tuple[dict[str, str], str], target: dict[str, str], port: int) -> bool:
    """Whether a pod (labels, namespace) may open a TCP connection to a pod of NAMESPACE."""
    selecting = [p for p in policies if selects(p["spec"]["podSelector"], target)]
    if not selecting:
        return True  # a pod no policy selects is not isolated
    return any(
        not rule.get("from") or any(peer_matches(peer, *source) for peer in rule["from"])
        for policy in selecting
        for rule in policy["spec"].get("ingress", [])
        if port_matches(rule.get("ports"), port)
    )


def ray_pod_labels(cluster: Obj, group: str, template: Obj, node_type: str) -> dict[str, str]:
    """The labels KubeRay gives a Ray pod: its own, the template's, then the three that the
    template cannot override (ray-operator/controllers/ray/common/pod.go, labelPod)."""
    name = cluster["metadata"]["name"]
    return {
        "ray.io/is-ray-node": "yes",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
        "ray.io/identifier": f"{name}-{node_type}",
        **template["metadata"].get("labels", {}),
        "ray.io/cluster": name,
        "ray.io/node-type": node_type,
        "ray.io/group": group,
    }


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_network_policies(entry):
    objects = render(ROOT / entry)
    policies = of_kind(objects, "NetworkPolicy")
    for policy in policies:
        # Egress is left open (kuberay/README.md: pip installs, downloads, the Kubernetes API).
        assert policy["spec"].get("policyTypes") == ["Ingress"], policy["metadata"]["name"]
    assert any(p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") for p in policies), "no default deny"

    cluster = the(objects, "RayCluster")
    head_template = cluster["spec"]["headGroupSpec"]["template"]
    head = ray_pod_labels(cluster, "headgroup", head_template, "head")
    ray_pods = {"head": head}
    ray_pods |= {
        group["groupName"]: ray_pod_labels(cluster, group["groupName"], group["template"], "worker")
        for group in cluster["spec"]["workerGroupSpecs"]
    }
    if cluster["spec"].get("gcsFaultToleranceOptions"):  # KubeRay's Redis cleanup Job: the head pod, relabelled
        ray_pods["redis-cleanup"] = {**head, "ray.io/node-type": "redis-cleanup"}
    services = {
        name: labels
        for name, labels in (
            (
                "postgres",
                next(
                    (
                        o["spec"]["template"]["metadata"]["labels"]
                        for o in of_kind(objects, "StatefulSet")
                        if o["metadata"]["name"] == "rayline-postgres"
                    ),
                    None,
                ),
            ),
            (
                "redis",
                next(
                    (
                        o["spec"]["template"]["metadata"]["labels"]
                        for o in of_kind(objects, "Deployment")
                        if o["metadata"]["name"] == "rayline-redis"
                    ),
                    None,
                ),
            ),
        )
        if labels
    }
    assert ("postgres" in services) != entry.endswith("external-database")
    assert ("redis" in services) == entry.endswith("ha")
    service_ports = {"postgres": 5432, "redis": 6379}
    # Which Ray pods reach them: PostgreSQL, the head alone (the control plane, and `rayline up`'s
    # migrations in its sidecar; pods and executions record through the control plane); Redis,
    # the head's GCS and KubeRay's Redis cleanup Job (the workers' raylets talk to the GCS only).
    service_clients = {"postgres": {"head"}, "redis": {"head", "redis-cleanup"}}
    ingress_controller = ({"app.kubernetes.io/name": "ingress-nginx"}, INGRESS_NAMESPACE)
    outsiders = {
        "another pod of the namespace": ({"app": "something-else"}, NAMESPACE),
        "a pod of another namespace": ({"app.kubernetes.io/name": "ingress-nginx"}, "default"),
        "another namespace's Ray cluster of the same name": (head, "default"),
    }
    # Ray's ports: GCS, Serve, dashboard, client, metrics, dashboard agent, HAProxy stats and
    # metrics, and one of the ports Ray picks for its workers.
    ray_ports = sorted(
        {p["containerPort"] for c in containers(head_template) for p in c.get("ports", [])}
        | {6379, 8000, 8265, 10001, 8080, 52365, 8404, 9101, 23456}
    )

    for target_name, target in ray_pods.items():
        for source_name, source in ray_pods.items():
            for port in ray_ports:
                assert may_connect(policies, (source, NAMESPACE), target, port), (
                    f"{entry}: {source_name} -> {target_name}:{port}"
                )
        for port in ray_ports:
            allowed = target_name == "head" and port == 8000
            assert may_connect(policies, ingress_controller, target, port) == allowed, (
                f"{entry}: the ingress controller -> {target_name}:{port} must be {'allowed' if allowed else 'denied'}"
            )
            for source_name, source in outsiders.items():
                assert not may_connect(policies, source, target, port), (
                    f"{entry}: {source_name} -> {target_name}:{port}"
                )
        for name, labels in services.items():
            assert not may_connect(policies, (labels, NAMESPACE), target, 8265), (
                f"{entry}: {name} -> {target_name}:8265"
            )
    for name, labels in services.items():
        port = service_ports[name]
        assert set(ray_pods) >= service_clients[name]
        for source_name, source in ray_pods.items():
            allowed = source_name in service_clients[name]
            assert may_connect(policies, (source, NAMESPACE), labels, port) == allowed, (
                f"{entry}: {source_name} -> {name}:{port} must be {'allowed' if allowed else 'denied'}"
            )
            assert not may_connect(policies, (source, NAMESPACE), labels, port + 1), (
                f"{entry}: {source_name} -> {name}:{port + 1}"
            )
        # A worker cannot pass for the head: KubeRay sets ray.io/node-type itself (labelPod).
        for group in cluster["spec"]["workerGroupSpecs"]:
            disguised = copy.deepcopy(group["template"])
            disguised["metadata"]["labels"] = {**disguised["metadata"].get("labels", {}), "ray.io/node-type": "head"}
            worker = ray_pod_labels(cluster, group["groupName"], disguised, "worker")
            assert not may_connect(policies, (worker, NAMESPACE), labels, port), (
                f"{entry}: {group['groupName']} -> {name}"
            )
        for source_name, source in {**outsiders, "the ingress controller": ingress_controller}.items():
            assert not may_connect(policies, source, labels, port), f"{entry}: {source_name} -> {name}:{port}"
        for other, other_labels in services.items():
            if other != name:
                assert not may_connect(policies, (other_labels, NAMESPACE), labels, port), f"{entry}: {other} -> {name}"
    # The namespace's other pods are isolated too (default deny), but for cert-manager's HTTP-01
    # solver pods, which the ingress controller must reach for the Ingress's certificate.
    assert not may_connect(policies, (head, NAMESPACE), {"app": "something-else"}, 80)
    solver = {"acme.cert-manager.io/http01-solver": "true", "acme.cert-manager.io/http-domain": "1"}
    assert may_connect(policies, ingress_controller, solver, 8089)
    assert not may_connect(policies, ingress_controller, solver, 8000)
    assert not any(may_connect(policies, source, solver, 8089) for source in outsiders.values())
    # One place names the ingress controller: its namespace, in every namespaceSelector.
    selectors = [
        peer["namespaceSelector"]
        for p in policies
        for rule in p["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if "namespaceSelector" in peer
    ]
    assert selectors and all(s == {"matchLabels": namespace_labels(INGRESS_NAMESPACE)} for s in selectors), selectors

    # And said plainly: a policy selects Postgres, Redis and the head with their ports.
    for target, port in [(head, 8000), *((services[name], service_ports[name]) for name in services)]:
        assert any(
            p["spec"]["podSelector"]
            and selects(p["spec"]["podSelector"], target)
            and any(
                port_matches(rule.get("ports"), port) and rule.get("ports") for rule in p["spec"].get("ingress", [])
            )
            for p in policies
        ), f"{entry}: no policy names port {port} of {target}"
    # A peer of the namespace's own pods names the Ray cluster's (and perhaps one kind of its pods,
    # by the labels KubeRay sets): never a label a pod template could give another pod alone.
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    match = peer["podSelector"]
                    assert set(match) == {"matchLabels"}, policy
                    assert match["matchLabels"].get("ray.io/cluster") == cluster["metadata"]["name"], policy
                    assert set(match["matchLabels"]) <= {"ray.io/cluster", "ray.io/node-type"}, policy


def test_readme_documents_the_security_defaults():
    readme = README.read_text()
    section = readme.split("## Security defaults", 1)
    assert len(section) == 2, "kuberay/README.md: no `## Security defaults` section"
    text = section[1].split("\n## ", 1)[0]
    ingress_policy = the(render(KUBERAY), "NetworkPolicy", "rayline-head-from-ingress")
    namespace = ingress_policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"][
        "kubernetes.io/metadata.name"
    ]
    assert namespace == INGRESS_NAMESPACE
    for words in (
        INGRESS_NAMESPACE,
        "kubernetes.io~1metadata.name",
        "rayline-default-deny-ingress",
        "rayline-ray-cluster",
        "rayline-head-from-ingress",
        "rayline-postgres",
        "rayline-redis",
        "automountServiceAccountToken",
        "readOnlyRootFilesystem",
        "RuntimeDefault",
        "REDISCLI_AUTH",
        "Egress",
        "kubectl create secret tls",
        "cert-manager",
    ):
        assert words in text, f"kuberay/README.md, Security defaults: say something about {words}"
