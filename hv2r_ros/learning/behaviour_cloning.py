"""Behaviour cloning of the goal-conditioned policy on precomputed encoder embeddings.

The encoder is frozen: every camera frame and goal frame is embedded once by the exported ONNX
encoder (the file the robot will run), and the policy learns on those embeddings. Training is
then cheap on a CPU, and the policy sees exactly the features it will see at run time.

Targets are the contract's normalised actions, ``(a - action_mean) / action_std`` per column;
proprio is normalised the same way. Both sets of statistics go into the exported policy's
metadata, where the runtime applies them.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from hv2r_ros.core.errors import ConfigError

__all__ = ["BCConfig", "BCData", "GoalBlind", "normalisation_stats", "train_policy"]

STD_FLOOR = 1e-3  # columns that never vary (e.g. a fixed rotation) are not blown up


@dataclasses.dataclass
class BCData:
    """Training samples (N of them), float32.

    Attributes:
        camera_embeddings: (N, C, D) embeddings of the cameras at the observation.
        goal_embeddings: (N, D) embedding of the episode's goal frame.
        proprio: (N, P) joint positions at the observation [rad].
        actions: (N, H, A) the chunk that followed the observation (raw units).
        episode: (N,) episode index of each sample (for train/validation splits).
    """

    camera_embeddings: np.ndarray
    goal_embeddings: np.ndarray
    proprio: np.ndarray
    actions: np.ndarray
    episode: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.actions)
        for name in ("camera_embeddings", "goal_embeddings", "proprio", "episode"):
            if len(getattr(self, name)) != n:
                raise ConfigError("sample counts differ", field=name,
                                  value=(len(getattr(self, name)), n))
        for name in ("camera_embeddings", "goal_embeddings", "proprio", "actions"):
            if not np.isfinite(getattr(self, name)).all():
                raise ConfigError("non-finite training data", field=name)

    def subset(self, mask: np.ndarray) -> "BCData":
        """The samples where ``mask`` (N,) is true."""
        return BCData(*(getattr(self, f.name)[mask] for f in dataclasses.fields(self)))


@dataclasses.dataclass(frozen=True)
class BCConfig:
    """Behaviour-cloning settings.

    Attributes:
        epochs: Passes over the training samples.
        batch_size: Samples per step.
        learning_rate: AdamW learning rate (cosine decay to 5 %).
        weight_decay: AdamW weight decay.
        embedding_noise: Std of Gaussian noise added to every embedding, relative to the
            embeddings' overall std (robustness to small feature shifts).
        validation_fraction: Fraction of episodes held out for the validation loss.
        seed: Seed of the split, shuffling, noise and initialisation.
    """

    epochs: int = 60
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    embedding_noise: float = 0.05
    validation_fraction: float = 0.1
    seed: int = 0


def normalisation_stats(data: BCData) -> dict[str, list[float]]:
    """The contract's ``action_mean/std`` (A,) and ``proprio_mean/std`` (P,) of ``data``."""
    actions = data.actions.reshape(-1, data.actions.shape[-1]).astype(np.float64)
    proprio = data.proprio.astype(np.float64)
    return {"action_mean": actions.mean(0).tolist(),
            "action_std": np.maximum(actions.std(0), STD_FLOOR).tolist(),
            "proprio_mean": proprio.mean(0).tolist(),
            "proprio_std": np.maximum(proprio.std(0), STD_FLOOR).tolist()}


class GoalBlind(nn.Module):
    """Wraps a policy so that it never sees the goal (the input is replaced by zeros).

    The goal-blind baseline has the same architecture, inputs and contract as the real policy;
    only the information in the goal is withheld, in training and at run time alike.
    """

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, camera_embeddings: torch.Tensor, goal_embedding: torch.Tensor,
                proprio: torch.Tensor) -> torch.Tensor:
        """Same signature as the wrapped policy; ``goal_embedding`` is ignored."""
        return self.policy(camera_embeddings, goal_embedding * 0.0, proprio)


def _tensors(data: BCData, stats: dict[str, list[float]]) -> tuple[torch.Tensor, ...]:
    action_mean = np.asarray(stats["action_mean"], np.float32)
    action_std = np.asarray(stats["action_std"], np.float32)
    proprio_mean = np.asarray(stats["proprio_mean"], np.float32)
    proprio_std = np.asarray(stats["proprio_std"], np.float32)
    return (torch.from_numpy(data.camera_embeddings.astype(np.float32)),
            torch.from_numpy(data.goal_embeddings.astype(np.float32)),
            torch.from_numpy(((data.proprio - proprio_mean) / proprio_std).astype(np.float32)),
            torch.from_numpy(((data.actions - action_mean) / action_std).astype(np.float32)))


def train_policy(model: nn.Module, data: BCData, config: BCConfig = BCConfig(), *,
                 log: Callable[[str], None] | None = None
                 ) -> tuple[dict[str, list[float]], list[dict[str, float]]]:
    """Train ``model`` in place by behaviour cloning (MSE on normalised action chunks).

    Args:
        model: ``model(camera_embeddings, goal, proprio) -> actions`` on normalised tensors.
        data: The samples; a ``validation_fraction`` of its episodes is held out.
        config: Settings.
        log: Called with one line per epoch (default: stderr).

    Returns:
        ``(stats, history)``: the normalisation statistics (for the export metadata) and one
        dict per epoch (epoch, train_loss, validation_loss, seconds). With a validation split
        the model ends with the weights of its best validation epoch (early stopping).
    """
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    episodes = np.unique(data.episode)
    held = rng.choice(episodes, size=max(1, int(round(config.validation_fraction
                                                        * len(episodes)))), replace=False)
    val_mask = np.isin(data.episode, held) if len(episodes) > 1 else np.zeros(len(data.episode),
                                                                             bool)
    train, val = data.subset(~val_mask), data.subset(val_mask)
    stats = normalisation_stats(train)
    cams, goals, proprio, actions = _tensors(train, stats)
    val_tensors = _tensors(val, stats) if len(val.actions) else None
    noise = config.embedding_noise * float(cams.std())
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(actions) / config.batch_size)))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, config.epochs * steps_per_epoch, eta_min=0.05 * config.learning_rate)
    gen = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    start = time.monotonic()
    best_loss, best_state = float("inf"), None
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(actions), generator=gen)
        total = 0.0
        for first in range(0, len(order), config.batch_size):
            idx = order[first:first + config.batch_size]
            c, g = cams[idx], goals[idx]
            if noise > 0:
                c = c + noise * torch.randn(c.shape, generator=gen)
                g = g + noise * torch.randn(g.shape, generator=gen)
            loss = ((model(c, g, proprio[idx]) - actions[idx]) ** 2).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        val_loss = float("nan")
        if val_tensors is not None:
            with torch.no_grad():
                vc, vg, vp, va = val_tensors
                val_loss = float(((model(vc, vg, vp) - va) ** 2).mean())
        record = {"epoch": epoch, "train_loss": total / len(actions),
                  "validation_loss": val_loss, "seconds": time.monotonic() - start}
        history.append(record)
        if val_tensors is not None and val_loss < best_loss:
            best_loss = val_loss
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        log(f"policy epoch {epoch}/{config.epochs}  train {record['train_loss']:.4f}  "
            f"validation {val_loss:.4f}  {record['seconds']:.0f}s")
    if best_state is not None:  # early stopping: the weights of the best validation epoch
        model.load_state_dict(best_state)
        log(f"kept epoch {min(history, key=lambda r: r['validation_loss'])['epoch']} "
            f"(validation {best_loss:.4f})")
    return stats, history
