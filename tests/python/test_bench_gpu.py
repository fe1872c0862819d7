"""scripts/bench_gpu.py's numbers check (the package's forward against PyTorch
fp32) run on the CPU backend with a tiny network, so the Python -> library path
the GPU check takes is exercised in every CI run, not only on a GPU machine."""
import os
import sys

import pytest

from conftest import SRC


def test_check_numbers_cpu(exe, tmp_path):
    pytest.importorskip("torch", reason="bench_gpu.py compares with PyTorch (Debian: python3-torch)")
    sys.path.insert(0, os.path.join(SRC, "scripts"))
    import bench_gpu
    weights = {"resnet20_cifar": bench_gpu.weights_for("resnet20_cifar", 32, "cpu", str(tmp_path), None)}
    results = bench_gpu.load_results(str(tmp_path / "check.json"), "cpu")
    # fp32 against PyTorch fp32 per image: bench_gpu.tolerance("fp32", 0) = 1e-3
    # (accumulation order only), and that bound must reject every mix-up
    failures = bench_gpu.check_numbers(exe, weights, "cpu", ["fp32"], results, n=4,
                                       arch="resnet20_cifar", size=32)
    assert failures == []
    assert results["numbers"]["fp32"]["ok"]
    assert (tmp_path / "check.md").exists()
