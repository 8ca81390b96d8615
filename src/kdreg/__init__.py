"""kdreg: knowledge distillation for regression with noisy labels (Takamoto et al., MIPR 2020).

The public names load lazily, so the light pipeline steps (noise injection, aggregation, plots) start without
importing torch.
"""
from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "METHODS": "kdreg.losses", "TORLoss": "kdreg.losses", "get_loss": "kdreg.losses",
    "MixtureNLLLoss": "kdreg.losses", "GUMLoss": "kdreg.losses",
    "TwoHeadOutput": "kdreg.models", "TwoHeadStudent": "kdreg.models", "create_model": "kdreg.models",
    "corrupt": "kdreg.noise",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kdreg' has no attribute {name!r}")
