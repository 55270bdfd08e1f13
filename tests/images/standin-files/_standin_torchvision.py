"""Stand-in shim (CI stand-in base images only, never in a real image).

PyPI's x86_64 torchvision wheels are built against CUDA torch; next to the CPU torch
of the amd64 stand-in, ``import torchvision`` fails with "operator torchvision::nms
does not exist" (raised by torchvision/_meta_registrations.py). Declaring the two op
schemas before torchvision is first imported lets its pure-Python parts load, which
is all importing sglang needs. Installed by a .pth file; does nothing until
torchvision is imported.
"""

import importlib.abc
import sys


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        sys.meta_path.remove(self)
        try:
            import torch

            lib = torch.library.Library("torchvision", "DEF")
            lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.define(
                "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
            )
            _LIBS.append(lib)
        except Exception:  # schemas already there (a matching build): nothing to do
            pass
        return None


_LIBS = []
sys.meta_path.insert(0, _Finder())
