"""Video pretraining of the reference encoder without action labels (time-contrastive, R3M-style).

The objective pulls together frames close in time and pushes apart frames far apart in the same
video and frames of other videos, so the embedding follows how the scene changes through a task
(where the objects are, what the hand or arm holds) rather than nuisance appearance. Per video
in a batch, three frames are drawn: an anchor ``a``, a positive ``p`` within
``positive_window`` frames of it, and a negative ``n`` at least ``negative_gap`` frames away.
With similarity ``s(x, y) = -||x - y||^2`` (R3M's choice), the loss is a cross-entropy over

    [s(a, p), s(a, n), s(a, a'_k) for the anchors a'_k of the other videos]

with the positive as the label, plus a small L1 penalty on the embeddings (R3M's sparsity
term). Anchor and positive get independent augmentations (a random shift of up to
``shift_px`` pixels and a brightness/contrast jitter), so the encoder does not key on exact
pixels.

Frames are prepared with the runtime's own preprocessing (``core.models.preprocess``: the same
resize and the same per-channel multiply-add), so the trained encoder sees at training time
what it sees on the robot.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.models.contract import EncoderSpec
from hv2r_ros.core.models.preprocess import Preprocessor, fit_image

__all__ = ["PretrainConfig", "pretrain_encoder", "resize_videos", "tcn_loss"]


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Time-contrastive pretraining settings.

    Attributes:
        steps: Optimiser steps.
        videos_per_batch: Videos sampled per step (3 frames each).
        learning_rate: AdamW learning rate (cosine decay to 10 % over ``steps``).
        weight_decay: AdamW weight decay.
        positive_window: Largest |anchor - positive| [frames].
        negative_gap: Smallest |anchor - negative| [frames].
        l1_weight: Weight of the mean |embedding| penalty.
        shift_px: Largest random translation of an augmented frame [px].
        jitter: Largest relative brightness / contrast change of an augmented frame.
        seed: Seed of sampling, augmentation and initialisation.
    """

    steps: int = 1500
    videos_per_batch: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    positive_window: int = 3
    negative_gap: int = 12
    l1_weight: float = 1e-4
    shift_px: int = 6
    jitter: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.videos_per_batch < 2:
            raise ConfigError("need steps >= 1 and videos_per_batch >= 2", field="steps",
                              value=(self.steps, self.videos_per_batch))
        if not 1 <= self.positive_window < self.negative_gap:
            raise ConfigError("need 1 <= positive_window < negative_gap",
                              field="positive_window",
                              value=(self.positive_window, self.negative_gap))


def resize_videos(videos: Sequence[np.ndarray], spec: EncoderSpec) -> list[np.ndarray]:
    """Each (T, h, w, 3) uint8 RGB video resized as the runtime does, to (T, H, W, 3) uint8."""
    out = []
    for index, video in enumerate(videos):
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise ConfigError("video must be uint8 (T, H, W, 3) RGB", field=f"video[{index}]",
                              value=f"{video.dtype} {video.shape}")
        frames = np.empty((len(video), *spec.input_size, 3), np.uint8)
        for t, frame in enumerate(video):
            fit_image(frame, spec, frames[t])
        out.append(frames)
    return out


def _normalise(frames: torch.Tensor, gain: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> normalised float (B, 3, H, W), the runtime's multiply-add."""
    x = frames.permute(0, 3, 1, 2).float()
    return x * gain[None, :, None, None] + offset[None, :, None, None]


def _augment(x: torch.Tensor, shift_px: int, jitter: float, gen: torch.Generator) -> torch.Tensor:
    """Random translation (replicate padding) and brightness/contrast jitter, per image."""
    batch, _, height, width = x.shape
    if shift_px > 0:
        padded = F.pad(x, (shift_px,) * 4, mode="replicate")
        dy = torch.randint(0, 2 * shift_px + 1, (batch,), generator=gen)
        dx = torch.randint(0, 2 * shift_px + 1, (batch,), generator=gen)
        x = torch.stack([padded[i, :, dy[i]:dy[i] + height, dx[i]:dx[i] + width]
                         for i in range(batch)])
    if jitter > 0:
        scale = 1 + (torch.rand(batch, 1, 1, 1, generator=gen) * 2 - 1) * jitter
        bias = (torch.rand(batch, 1, 1, 1, generator=gen) * 2 - 1) * jitter
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * scale + mean + bias
    return x


def tcn_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Time-contrastive cross-entropy and its accuracy (positive ranked first).

    Args:
        anchor, positive, negative: Embeddings (B, D) of B different videos.

    Returns:
        ``(loss, accuracy)`` scalars.
    """
    batch = anchor.shape[0]
    sim_pos = -((anchor - positive) ** 2).sum(-1, keepdim=True)           # (B, 1)
    sim_neg = -((anchor - negative) ** 2).sum(-1, keepdim=True)           # (B, 1)
    sim_other = -torch.cdist(anchor, anchor) ** 2                         # (B, B)
    eye = torch.eye(batch, dtype=torch.bool, device=anchor.device)
    sim_other = sim_other.masked_fill(eye, -math.inf)
    logits = torch.cat([sim_pos, sim_neg, sim_other], dim=1)
    labels = torch.zeros(batch, dtype=torch.long, device=anchor.device)
    loss = F.cross_entropy(logits, labels)
    accuracy = (logits.argmax(dim=1) == 0).float().mean()
    return loss, accuracy


def _sample(videos: Sequence[np.ndarray], count: int, config: PretrainConfig,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anchor, positive and negative frames (count, H, W, 3) from ``count`` distinct videos."""
    picks = rng.choice(len(videos), size=count, replace=len(videos) < count)
    a, p, n = [], [], []
    for v in picks:
        video = videos[v]
        length = len(video)
        i = int(rng.integers(length))
        lo, hi = max(0, i - config.positive_window), min(length - 1, i + config.positive_window)
        j = int(rng.integers(lo, hi + 1))
        far = np.concatenate([np.arange(0, max(0, i - config.negative_gap + 1)),
                              np.arange(min(length, i + config.negative_gap), length)])
        k = int(rng.choice(far)) if len(far) else int(rng.integers(length))
        a.append(video[i])
        p.append(video[j])
        n.append(video[k])
    return np.stack(a), np.stack(p), np.stack(n)


def pretrain_encoder(model: nn.Module, spec: EncoderSpec, videos: Sequence[np.ndarray],
                     config: PretrainConfig = PretrainConfig(), *,
                     log: Callable[[str], None] | None = None, log_every: int = 50
                     ) -> list[dict[str, float]]:
    """Train ``model`` in place with the time-contrastive objective.

    Args:
        model: Encoder mapping normalised (B, 3, H, W) to (B, D).
        spec: Its contract spec (preprocessing constants).
        videos: uint8 (T, H, W, 3) videos already at the input size (``resize_videos``); each
            needs more than ``negative_gap`` frames.
        config: Settings.
        log: Called with one progress line every ``log_every`` steps (default: stderr).
        log_every: Steps between progress lines.

    Returns:
        History: one dict per logged step (step, loss, accuracy, seconds).
    """
    usable = [v for v in videos if len(v) > config.negative_gap]
    if len(usable) < 2:
        raise ConfigError("need at least two videos longer than negative_gap frames",
                          field="videos", value=len(usable))
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    prep = Preprocessor(spec, 1)
    gain, offset = torch.from_numpy(prep.gain), torch.from_numpy(prep.offset)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, config.steps, eta_min=0.1 * config.learning_rate)
    history: list[dict[str, float]] = []
    model.train()
    start = time.monotonic()
    running = np.zeros(2)
    for step in range(1, config.steps + 1):
        batch = min(config.videos_per_batch, len(usable))
        frames = [torch.from_numpy(f) for f in _sample(usable, batch, config, rng)]
        x = _normalise(torch.cat(frames), gain, offset)
        x = _augment(x, config.shift_px, config.jitter, gen)
        z = model(x)
        anchor, positive, negative = z[:batch], z[batch:2 * batch], z[2 * batch:]
        loss, accuracy = tcn_loss(anchor, positive, negative)
        total = loss + config.l1_weight * z.abs().mean()
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        optimiser.step()
        schedule.step()
        running += (loss.item(), accuracy.item())
        if step % log_every == 0 or step == config.steps:
            n = log_every if step % log_every == 0 else step % log_every
            loss_avg, acc_avg = running / n
            running[:] = 0
            elapsed = time.monotonic() - start
            history.append({"step": step, "loss": loss_avg, "accuracy": acc_avg,
                            "seconds": elapsed})
            eta = elapsed / step * (config.steps - step)
            log(f"pretrain {step}/{config.steps}  loss {loss_avg:.3f}  "
                f"acc {acc_avg:.2f}  {elapsed:.0f}s elapsed, ~{eta:.0f}s left")
    model.eval()
    return history
