# syntax=docker/dockerfile:1
# Rayline on the official Ray image: the same image runs the Ray head, the workers and the control
# plane (`rayline up --ray-address ...`, kuberay/).
#   CPU: docker build -t rayline:0.1.0-ray2.60.0-py311 .
#   GPU: docker build --build-arg RAY_IMAGE_VARIANT=-gpu -t rayline-gpu:0.1.0-ray2.60.0-py311 .
# The tag's Ray version must equal the ray[serve]==X pin of pyproject.toml (tests/unit/test_dockerfile.py).
ARG RAY_IMAGE_VARIANT=""
FROM rayproject/ray:2.60.0-py311${RAY_IMAGE_VARIANT}

# The base image's unprivileged user `ray` (uid 1000, group users = 100), whose Python is
# ~/anaconda3; numeric, so that Kubernetes' runAsNonRoot can check it.
USER 1000:100
WORKDIR /home/ray

# Rayline with the dependencies of pyproject.toml: ray[serve] (already in the base image, at the
# pinned version), smart_open[http], with which every node downloads the pipeline packages from
# the control plane over HTTP, and psycopg, the driver of postgresql+psycopg:// database URLs.
# Not the `notebooks` extra.
COPY --chown=ray:users pyproject.toml README.md /tmp/rayline-src/
COPY --chown=ray:users platform /tmp/rayline-src/platform
COPY --chown=ray:users serve_apps /tmp/rayline-src/serve_apps
RUN pip install --no-cache-dir /tmp/rayline-src && rm -rf /tmp/rayline-src

ENV RAYLINE_HOME=/home/ray/rayline
EXPOSE 8000 8265

# The control plane, attached to the Ray cluster that RAY_ADDRESS (or this node's running Ray)
# names: `docker run ... rayline up --ray-address HOST:6379` names it explicitly. KubeRay replaces
# the command of the Ray containers with its own `ray start`.
CMD ["rayline", "up", "--ray-address", "auto"]
