"""featurenorm: out-of-distribution detection with block-selected FeatureNorm
(Yu et al., CVPR 2023), NumPy in and NumPy out, over the C library libfeaturenorm.

    import featurenorm as fn
    model = fn.Model("resnet20_cifar", "resnet20.safetensors", backend="cpu")
    sel = model.select("cifar10-jpeg/train")                # NormRatio picks the block
    id_, ood = (model.score(d, selection=sel) for d in ("cifar10-jpeg/test", "dtd10"))
    print(fn.evaluate(id_, {"Textures": ood}))               # FPR95 / AUROC / AUPR

Model.forward runs a NumPy batch (uint8 N x S x S x 3, or float32 N x 3 x S x S)
and returns the FeatureNorm of every block, logits, features and every score.
Failed calls raise featurenorm.Error (``status``, ``message`` from fn_last_error()).
Long calls release the GIL; progress goes to stderr as the CLI's does.
"""
from ._eval import evaluate, metrics
from ._lib import ABI_VERSION, Error, lib
from ._model import BACKENDS, PRECISIONS, PRESETS, Block, Dataset, Model, Selection, architectures, scores

__version__ = lib.fn_version().decode()
__all__ = ["ABI_VERSION", "BACKENDS", "PRECISIONS", "PRESETS", "Block", "Dataset", "Error", "Model",
           "Selection", "architectures", "cuda_device_count", "evaluate", "metrics", "scores"]


def cuda_device_count():
    """CUDA devices the library can use (0 without CUDA)."""
    return lib.fn_cuda_device_count()
