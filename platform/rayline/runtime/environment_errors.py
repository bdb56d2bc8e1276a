"""What Ray says when a pipeline's runtime environment cannot be set up, told in a few words.

Ray's message is its runtime-env agent's traceback; what a user needs from it is what failed (the
package download, with the HTTP status or the connection error, or pip, with its errors) and
what to check. Used for elastic executions (``rayline.runtime.elastic``) and warm pods
(``rayline.runtime.serve_deployments``).
"""

from __future__ import annotations

import re

# Bounded: a pip log or a traceback can be long.
MAX_CAUSE_CHARS = 2000
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Timeout|Exit): \S.*$", re.M)
_HTTP_STATUS = re.compile(r"\b(\d{3}) (?:Client|Server) Error: (.*?) for url: (\S+)")
_CONNECTION_POOL = re.compile(
    r"(HTTPS?)ConnectionPool\(host='([^']*)', port=(\d+)\)(?:: Max retries exceeded with url: (\S+))?"
)
_HTTP_HINTS = {
    401: "the node sent no package token, or a wrong one: Ray's nodes need RAY_RUNTIME_ENV_BEARER_TOKEN set to "
    "the platform's RAYLINE_PACKAGE_TOKEN",
    404: "the platform at that address has no such package: check that RAYLINE_PACKAGE_URL_BASE is its URL as "
    "Ray's nodes reach it",
}
_HTTP_HINTS[403] = _HTTP_HINTS[401]


def _bounded(text: str, limit: int = MAX_CAUSE_CHARS) -> str:
    """The text, or its start and its end around '...' past ``limit`` characters."""
    text = text.strip()
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half].rstrip()}\n...\n{text[-half:].lstrip()}"


def last_error(text: str) -> str:
    """The last exception of a traceback, with its message (what follows it), else the text
    without Ray's own sentences around it."""
    found = list(_EXCEPTION_LINE.finditer(text))
    if found:
        return _bounded(text[found[-1].start() :])
    lines = [
        line
        for line in text.strip().splitlines()
        if line.strip()
        not in (
            "Failed to set up runtime environment.",
            "Could not create the actor because its associated runtime env failed to be created.",
        )
    ]
    return _bounded("\n".join(lines))


def _download_failure(text: str) -> str:
    status = _HTTP_STATUS.search(text)
    if status:
        code, reason, url = int(status.group(1)), status.group(2), status.group(3).rstrip("'\".,)")
        hint = _HTTP_HINTS.get(code) or ("the platform failed to serve it" if code >= 500 else "")
        return f"downloading the package {url} failed: {code} {reason}" + (f" ({hint})." if hint else ".")
    pool = _CONNECTION_POOL.search(text)
    if pool:
        scheme, host, port, path = pool.groups()
        line = text[pool.start() :].splitlines()[0]
        caused = line.partition("(Caused by ")[2]
        if caused:  # NewConnectionError("HTTPConnection(host=..., port=...): Failed to ...")
            detail = re.sub(r"^\w+\(['\"]?(?:<[^>]*>|\w+\([^)]*\))[:,]\s*['\"]?", "", caused)
            detail = re.sub(r"['\"]?\)\)\s*$", "", detail)
        else:  # Read timed out. (read timeout=...)
            detail = line[pool.end() - pool.start() :].lstrip(": ")
        default_port = {"HTTP": "80", "HTTPS": "443"}[scheme]
        url = f"{scheme.lower()}://{host}{'' if port == default_port else ':' + port}{path or ''}"
        return (
            f"downloading the package {url} failed: {detail or 'no connection'} (check that Ray's nodes reach "
            "the platform at RAYLINE_PACKAGE_URL_BASE)."
        )
    return f"downloading or unpacking the package failed: {last_error(text)}"


def _pip_failure(text: str) -> str:
    exit_status = re.search(r"returned non-zero exit status (-?\d+)", text)
    output = text.partition("lines of stdout:")[2] or text
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR:", "error:"))]
    shown = "\n".join(dict.fromkeys(errors)) if errors else "\n".join(lines[-15:])
    how = f"pip install exited with status {exit_status.group(1)}" if exit_status else "pip install failed"
    return f"installing its requirements failed ({how}; check the pipeline's requirements file):\n{_bounded(shown)}"


def runtime_env_failure(text: str) -> str:
    """What Ray says failed in setting up a pipeline's runtime env, with the cause: downloading
    its package (the HTTP status, or the connection error), installing its requirements (pip's
    errors), else the last error Ray reports."""
    if "/runtime_env/pip.py" in text or "'pip', 'install'" in text:
        return _pip_failure(text)
    if "download_and_unpack_package" in text or "/runtime_env/working_dir.py" in text or _HTTP_STATUS.search(text):
        return _download_failure(text)
    return last_error(text)
