"""Capture throughput with vector codes vs a plain forward pass of the same model.

Run: python -m pytest tests/benchmarks/test_bench_capture.py --benchmark-only
The ``ratio`` printed at the end is capture time / forward time (1.0 = free capture).
"""

import pytest
import torch

from introspect.capture import capture
from introspect.data import ArrayDataset
from introspect.models import create_model

CASES = {
    "cifar_resnet44": dict(n=512, layers=["CN1", "CL1", "CL2", "CL3"]),
    "timm:resnet18": dict(n=64, layers=["CL1", "CL2", "CL3", "CL4"], size=(3, 160, 160)),
}
RESULTS: dict = {}


def _data(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    spec = CASES[name]
    x = torch.rand(spec["n"], *spec.get("size", model.input_size))
    return model, ArrayDataset(x, torch.zeros(len(x), dtype=torch.long))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("mode", ["forward", "capture_codes"])
def test_capture_throughput(benchmark, name, mode):
    model, data = _data(name)
    benchmark.group = f"capture {name}"
    if mode == "forward":

        def run():
            with torch.no_grad():
                for s in range(0, len(data), 64):
                    model(data.images[s : s + 64])

    else:

        def run():
            capture(
                model, data, CASES[name]["layers"], reducer="codes", batch_size=64, progress=False
            )

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    RESULTS[(name, mode)] = benchmark.stats.stats.median
    benchmark.extra_info["images_per_s"] = len(data) / benchmark.stats.stats.median
    if (name, "forward") in RESULTS and (name, "capture_codes") in RESULTS:
        ratio = RESULTS[(name, "capture_codes")] / RESULTS[(name, "forward")]
        benchmark.extra_info["capture_over_forward"] = ratio
        print(f"\n{name}: capture with codes / plain forward = {ratio:.3f}")
