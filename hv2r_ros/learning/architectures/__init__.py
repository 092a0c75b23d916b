"""Registry of the encoder and policy architectures ``hv2r export`` can build.

``ENCODERS[name]`` describes an encoder: how to build it and the preprocessing its weights were
trained with, which ``EncoderArch.spec`` turns into the contract's EncoderSpec. ``POLICIES[name]``
builds a policy from the contract's shapes. Torch only; torchvision is never imported.

Preprocessing of the pretrained families (all take RGB):

- torchvision ImageNet ResNets and DINO ViTs: pixels / 255, then (x - mean) / std with ImageNet
  mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
- R3M: ``forward`` takes 0-255 pixels, divides by 255, then applies the same ImageNet
  ``Normalize``; images that are not 224x224 are first ``Resize(256)`` + ``CenterCrop(224)``.
  The exported network is R3M's bare ``convnet`` (``fc`` = Identity) and the metadata
  reproduces the rest: pixel_range [0, 1] (the /255), ImageNet mean/std in those units,
  input 224x224, resize ``resize_shorter_center_crop``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from torch import nn

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.models.contract import EncoderSpec
from hv2r_ros.learning.architectures.policy import MlpPolicy, TransformerPolicy
from hv2r_ros.learning.architectures.resnet import ResNet, resnet18, resnet50
from hv2r_ros.learning.architectures.vit import VisionTransformer, vit_small

__all__ = [
    "ENCODERS", "POLICIES", "EncoderArch", "MlpPolicy", "PolicyArch", "ResNet",
    "TransformerPolicy", "VisionTransformer", "build_encoder", "build_policy",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class EncoderArch:
    """One buildable encoder and the preprocessing its weights expect.

    Attributes:
        name: Registry name (``resnet18-r3m``).
        build: ``build(input_size, embedding_size) -> nn.Module``; embedding_size None keeps
            the architecture's own output size.
        input_size: Default square input side [px].
        pretrained_on: What the usual weights of this name were trained on (metadata text).
        pixel_range, mean, std, resize, pixel_format: Preprocessing, as in EncoderSpec.
        description: One line for ``hv2r export --help``.
    """

    name: str
    build: Callable[[int, int | None], nn.Module]
    input_size: int
    pretrained_on: str
    description: str
    pixel_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: str = "resize_shorter_center_crop"
    pixel_format: str = "rgb"

    def spec(self, model: nn.Module, input_size: int, pretrained_on: str) -> EncoderSpec:
        """The EncoderSpec of ``model`` built by this entry at ``input_size`` [px]."""
        return EncoderSpec(
            input_size=(input_size, input_size), pixel_format=self.pixel_format,
            pixel_range=self.pixel_range, mean=self.mean, std=self.std, resize=self.resize,
            embedding_size=int(model.embedding_size), architecture=self.name,
            pretrained_on=pretrained_on)


@dataclasses.dataclass(frozen=True)
class PolicyArch:
    """One buildable policy.

    Attributes:
        name: Registry name.
        build: ``build(num_cameras C, embedding_size D, proprio_size P, chunk_length H,
            action_size A) -> nn.Module`` mapping (B,C,D), (B,D), (B,P) to (B,H,A).
        description: One line for ``hv2r export --help``.
    """

    name: str
    build: Callable[[int, int, int, int, int], nn.Module]
    description: str


def _vit(layer_scale: float | None) -> Callable[[int, int | None], nn.Module]:
    def build(input_size: int, embedding_size: int | None) -> nn.Module:
        if embedding_size not in (None, 384):
            raise ConfigError("ViT-S has a fixed embedding size", field="embedding_size",
                              value=embedding_size, choices=[384])
        return vit_small(input_size, 16, layer_scale)
    return build


ENCODERS: dict[str, EncoderArch] = {arch.name: arch for arch in (
    EncoderArch("reference", lambda size, d: resnet18(64, d or 256), 224,
                "", "the project's encoder: ResNet-18 trunk + linear projection, D=256"),
    EncoderArch("reference-small", lambda size, d: resnet18(32, d or 256, spatial_grid=4), 112,
                "", "the project's CPU-trainable encoder: ResNet-18 at half width, 112 px, "
                "4x4 spatial map projected to D=256", resize="resize"),
    EncoderArch("resnet18", lambda size, d: resnet18(64, d), 224, "ImageNet-1k",
                "torchvision ResNet-18, fc removed, D=512"),
    EncoderArch("resnet50", lambda size, d: resnet50(64, d), 224, "ImageNet-1k",
                "torchvision ResNet-50, fc removed, D=2048"),
    EncoderArch("resnet18-r3m", lambda size, d: resnet18(64, d), 224, "Ego4D (R3M)",
                "R3M ResNet-18 convnet, D=512"),
    EncoderArch("resnet50-r3m", lambda size, d: resnet50(64, d), 224, "Ego4D (R3M)",
                "R3M ResNet-50 convnet, D=2048"),
    EncoderArch("vits16-dino", _vit(None), 224, "ImageNet-1k (DINO)",
                "ViT-S/16, DINO layout, cls embedding D=384"),
    EncoderArch("vits16-dinov2", _vit(1e-5), 224, "LVD-142M (DINOv2)",
                "ViT-S/16 with LayerScale, DINOv2 layout, cls embedding D=384"),
)}

POLICIES: dict[str, PolicyArch] = {arch.name: arch for arch in (
    PolicyArch("mlp", MlpPolicy, "MLP over LayerNorm-ed embeddings + proprio (3 x 512)"),
    PolicyArch("transformer", TransformerPolicy,
               "4-block transformer over camera/goal/proprio tokens + H action queries"),
)}


def build_encoder(name: str, input_size: int | None = None,
                  embedding_size: int | None = None) -> tuple[nn.Module, EncoderArch]:
    """Build the registered encoder ``name`` (eval mode) at ``input_size`` [px]."""
    if name not in ENCODERS:
        raise ConfigError("unknown encoder architecture", field="--arch", value=name,
                          choices=sorted(ENCODERS))
    arch = ENCODERS[name]
    return arch.build(input_size or arch.input_size, embedding_size).eval(), arch


def build_policy(name: str, num_cameras: int, embedding_size: int, proprio_size: int,
                 chunk_length: int, action_size: int) -> nn.Module:
    """Build the registered policy ``name`` (eval mode) for the given C, D, P, H, A."""
    if name not in POLICIES:
        raise ConfigError("unknown policy architecture", field="--policy-arch", value=name,
                          choices=sorted(POLICIES))
    return POLICIES[name].build(num_cameras, embedding_size, proprio_size, chunk_length,
                                action_size).eval()
