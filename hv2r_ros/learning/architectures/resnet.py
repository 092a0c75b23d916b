"""ResNet-18/50 in torchvision's module layout, so torchvision and R3M weights load strictly.

Module and parameter names match ``torchvision.models.resnet`` (``conv1``, ``bn1``, ``relu``,
``maxpool``, ``layer1``..``layer4`` of ``BasicBlock``/``Bottleneck`` with ``conv1/bn1/conv2/bn2
(/conv3/bn3)`` and ``downsample.0/.1``, ``avgpool``, ``fc``); torchvision itself is not imported.
As encoders the classifier is dropped (``fc`` absent, as R3M's ``convnet.fc = Identity()``) and
the output is the global-average-pooled feature, optionally followed by a linear ``proj``.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_ch, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (stride here, as torchvision's v1.5), 1x1 expand x4 (ResNet-50)."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(in_ch, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A torchvision-layout ResNet trunk that returns the pooled feature, shape (B, D).

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: Blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18, (3, 4, 6, 3) for ResNet-50.
        width: Channels of the stem and the first stage (64 in torchvision); stages double it.
        embedding_size: When given and different from the pooled feature size, a linear ``proj``
            maps the pooled feature to this size; otherwise D is the pooled feature size
            (512 x width/64 for ResNet-18, 2048 x width/64 for ResNet-50).
        spatial_grid: Pool the last feature map to a g x g grid and flatten it (a spatial
            embedding, with ``embedding_size`` as its projection) instead of the global
            average; the input side must make the map divisible (112 px -> 4 x 4, g = 2 or 4).

    Input: ``images`` float32 (B, 3, H, W), already normalised; H, W >= 32.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, ...],
                 width: int = 64, embedding_size: int | None = None,
                 spatial_grid: int | None = None) -> None:
        super().__init__()
        self._in_ch = width
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._stage(block, width, layers[0], 1)
        self.layer2 = self._stage(block, width * 2, layers[1], 2)
        self.layer3 = self._stage(block, width * 4, layers[2], 2)
        self.layer4 = self._stage(block, width * 8, layers[3], 2)
        # spatial_grid g keeps a g x g map (flattened) instead of the global average: where
        # things are survives, which the global pool of the torchvision layout throws away.
        grid = spatial_grid or 1
        self.avgpool = nn.AdaptiveAvgPool2d((grid, grid))
        self.feature_size = width * 8 * block.expansion * grid * grid
        self.proj = None
        if embedding_size is not None and embedding_size != self.feature_size:
            self.proj = nn.Linear(self.feature_size, embedding_size)
        self.embedding_size = embedding_size or self.feature_size
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _stage(self, block, width: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._in_ch != width * block.expansion:
            downsample = nn.Sequential(_conv1x1(self._in_ch, width * block.expansion, stride),
                                       nn.BatchNorm2d(width * block.expansion))
        stage = [block(self._in_ch, width, stride, downsample)]
        self._in_ch = width * block.expansion
        stage += [block(self._in_ch, width) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map normalised images (B, 3, H, W) to embeddings (B, D)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return x if self.proj is None else self.proj(x)


def resnet18(width: int = 64, embedding_size: int | None = None,
             spatial_grid: int | None = None) -> ResNet:
    """ResNet-18 trunk; D = 512 x width/64 unless ``embedding_size`` adds a projection."""
    return ResNet(BasicBlock, (2, 2, 2, 2), width, embedding_size, spatial_grid)


def resnet50(width: int = 64, embedding_size: int | None = None) -> ResNet:
    """ResNet-50 trunk; D = 2048 x width/64 unless ``embedding_size`` adds a projection."""
    return ResNet(Bottleneck, (3, 4, 6, 3), width, embedding_size)
