"""Load third-party checkpoints (torchvision, R3M, DINO/DINOv2) into our architectures.

Checkpoints arrive wrapped (R3M: ``{"r3m": {"module.convnet.conv1.weight": ...}}``; DINO:
``{"teacher": {"backbone.…"}}``) and carry heads we do not export (R3M's language encoder and
reward head, torchvision's ``fc``, DINO's ``head``). ``load_weights`` unwraps, strips known
prefixes, drops the known-unused keys, then loads with ``strict=True``; anything else missing,
unexpected or mis-shaped is reported by name in a ``WeightsError``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import torch
from torch import nn

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.learning.architectures.vit import VisionTransformer, resize_pos_embed

# Containers that wrap the state dict inside a saved checkpoint, tried in this order.
WRAPPER_KEYS = ("state_dict", "model", "r3m", "teacher")
# Stripped from the front of every key, repeatedly (DataParallel, R3M, DINO, wrappers).
KNOWN_PREFIXES = ("module.", "convnet.", "backbone.", "encoder.", "model.")
# Keys of heads we never export: dropped silently (substring match after prefix stripping).
IGNORED_KEY_PARTS = ("lang_enc.", "lang_rew.", "mask_token", "register_tokens")
# Top-level heads dropped when the model has no module of that name.
IGNORED_HEADS = ("fc.", "head.")
_SHOWN = 8


class WeightsError(ConfigError):
    """A checkpoint does not fit the architecture (missing, unexpected or mis-shaped keys)."""


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What ``load_weights`` did.

    Attributes:
        loaded: Tensors loaded into the model.
        stripped_prefixes: Prefixes removed from checkpoint keys (e.g. ``module.convnet.``).
        ignored: Checkpoint keys dropped as known-unused heads.
    """

    loaded: int
    stripped_prefixes: tuple[str, ...]
    ignored: tuple[str, ...]


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a ``.pt``/``.pth`` checkpoint (tensors only, no pickled code) and unwrap it."""
    try:
        raw = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise WeightsError("checkpoint not found", file=os.fspath(path)) from exc
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... by format
        raise WeightsError(f"cannot read the checkpoint as a tensor-only file ({exc})",
                           file=os.fspath(path)) from exc
    return unwrap_checkpoint(raw, file=os.fspath(path))


def unwrap_checkpoint(raw: Any, file: str | None = None) -> dict[str, torch.Tensor]:
    """The name -> tensor mapping inside ``raw`` (a state dict, or one wrapped by a key)."""
    while isinstance(raw, Mapping) and not any(isinstance(v, torch.Tensor)
                                               for v in raw.values()):
        wrapper = next((key for key in WRAPPER_KEYS if isinstance(raw.get(key), Mapping)), None)
        if wrapper is None:
            raise WeightsError("no state dict found in the checkpoint", file=file,
                               field="<top level>", value=sorted(map(str, raw))[:_SHOWN],
                               choices=WRAPPER_KEYS)
        raw = raw[wrapper]
    if not isinstance(raw, Mapping):
        raise WeightsError("checkpoint is not a state dict", file=file,
                           value=type(raw).__name__)
    return {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor] | str | os.PathLike[str],
                 file: str | None = None) -> LoadReport:
    """Load ``state`` (a state dict or a checkpoint path) into ``model`` strictly.

    Args:
        model: The architecture to fill.
        state: A state dict, possibly wrapped and prefixed, or a checkpoint file.
        file: Name used in error messages when ``state`` is a mapping.

    Returns:
        A LoadReport.

    Raises:
        WeightsError: Keys missing from or unexpected in the checkpoint after stripping and
            ignoring, or a shape mismatch; the message lists them.
    """
    if isinstance(state, (str, os.PathLike)):
        file = os.fspath(state)
        state = read_checkpoint(state)
    else:
        state = unwrap_checkpoint(state, file)
    expected = model.state_dict()
    renamed: dict[str, torch.Tensor] = {}
    stripped: set[str] = set()
    ignored: list[str] = []
    for key, tensor in state.items():
        name = key
        while name not in expected:
            prefix = next((p for p in KNOWN_PREFIXES if name.startswith(p)), None)
            if prefix is None:
                break
            name = name[len(prefix):]
        if name not in expected and (any(part in name for part in IGNORED_KEY_PARTS) or any(
                name.startswith(head) and not hasattr(model, head[:-1])
                for head in IGNORED_HEADS)):
            ignored.append(key)
            continue
        if name != key:
            stripped.add(key[: len(key) - len(name)])
        renamed[name] = tensor
    if isinstance(model, VisionTransformer) and "pos_embed" in renamed:
        renamed["pos_embed"] = resize_pos_embed(renamed["pos_embed"], model.grid)
    missing = [k for k in expected if k not in renamed]
    unexpected = [k for k in renamed if k not in expected]
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                  for k, v in renamed.items() if k in expected and v.shape != expected[k].shape]
    problems = [f"{label} ({len(keys)}): {', '.join(keys[:_SHOWN])}"
                + (", ..." if len(keys) > _SHOWN else "")
                for label, keys in (("missing", missing), ("unexpected", unexpected),
                                    ("shape mismatch", mismatched)) if keys]
    if problems:
        raise WeightsError(
            f"checkpoint does not fit {type(model).__name__} after stripping prefixes "
            f"{sorted(stripped) or 'none'}: " + "; ".join(problems), file=file,
            field="state_dict")
    model.load_state_dict(renamed, strict=True)
    return LoadReport(len(renamed), tuple(sorted(stripped)), tuple(ignored))
