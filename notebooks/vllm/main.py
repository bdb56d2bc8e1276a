"""A low_latency pipeline serving a vLLM engine on a GPU.

The engine is created at import, once per pod: loading the weights into GPU memory is the slow
part, and every execution then shares the engine (vLLM batches concurrent requests itself, so
deploy it with enable_parallel_executions=True). Deploy with gpu_request=1; see README.md.
"""

import os

from vllm import LLM, SamplingParams

MODEL_NAME = os.environ.get("VLLM_MODEL", "Qwen/Qwen2.5-0.5B-Instruct")
ENGINE = LLM(model=MODEL_NAME, gpu_memory_utilization=float(os.environ.get("VLLM_GPU_MEMORY_UTILIZATION", "0.8")))
print(f"vLLM engine ready with {MODEL_NAME}")


def generate(prompt, max_tokens=128, temperature=0.7):
    params = SamplingParams(max_tokens=int(max_tokens), temperature=float(temperature))
    completion = ENGINE.generate([prompt], params)[0].outputs[0]
    return {"text": completion.text, "tokens": len(completion.token_ids)}
