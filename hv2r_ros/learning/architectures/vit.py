"""A DINO/DINOv2-style Vision Transformer (ViT-S/16 by default) returning the cls embedding.

Module names follow timm / DINO / DINOv2 (``patch_embed.proj``, ``cls_token``, ``pos_embed``,
``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, optional LayerScale
``blocks.N.ls1.gamma``/``ls2.gamma`` as in DINOv2, final ``norm``), so their checkpoints load
after prefix stripping. The attention and MLP blocks are shared with the transformer policy.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection.

    Args:
        dim: Token width.
        num_heads: Heads; ``dim`` must be divisible by it.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (B, N, dim) -> (B, N, dim)."""
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        # Written out rather than scaled_dot_product_attention: it exports to plain MatMul /
        # Softmax that every execution provider runs.
        attn = (q * (q.shape[-1] ** -0.5)) @ k.transpose(-2, -1)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    """Two linear layers with GELU (``fc1``, ``act``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel residual scale ``gamma`` (DINOv2's ``ls1``/``ls2``)."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)).

    Args:
        dim: Token width.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / dim.
        layer_scale: Initial LayerScale value (DINOv2 uses 1e-5 in training); None: no
            LayerScale (DINO v1, timm's plain ViT).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0,
                 layer_scale: float | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens: (B, 3, H, W) -> (B, H/p * W/p, dim)."""

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """ViT encoder returning the final-normed cls token, shape (B, dim).

    Args:
        img_size: Input height = width [px], a multiple of ``patch_size``; the learned
            ``pos_embed`` has one entry per patch plus the cls token.
        patch_size: Patch side [px].
        dim: Token width = embedding size D (384 for ViT-S).
        depth: Blocks (12 for ViT-S).
        num_heads: Attention heads (6 for ViT-S).
        mlp_ratio: MLP hidden width / dim.
        layer_scale: LayerScale init (DINOv2) or None (DINO v1).

    Input: ``images`` float32 (B, 3, img_size, img_size), already normalised.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, dim: int = 384,
                 depth: int = 12, num_heads: int = 6, mlp_ratio: float = 4.0,
                 layer_scale: float | None = None) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.grid = img_size // patch_size
        self.embedding_size = dim
        self.patch_embed = PatchEmbed(patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid + 1, dim))
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, layer_scale) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, H, W) -> cls embedding (B, dim)."""
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]


def resize_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """Bicubically resample a checkpoint's (1, 1 + g*g, dim) pos_embed to (1, 1 + grid^2, dim).

    Lets a checkpoint trained at another resolution (DINOv2's 518 px) be exported at ours.
    """
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    old = int(math.isqrt(patch_pos.shape[1]))
    if old * old != patch_pos.shape[1]:
        raise ValueError(f"pos_embed has {patch_pos.shape[1]} patch entries, not a square grid")
    if old == grid:
        return pos_embed
    dim = patch_pos.shape[-1]
    patch_pos = patch_pos.reshape(1, old, old, dim).permute(0, 3, 1, 2)
    patch_pos = nn.functional.interpolate(patch_pos, size=(grid, grid), mode="bicubic",
                                          align_corners=False)
    return torch.cat([cls_pos, patch_pos.permute(0, 2, 3, 1).reshape(1, grid * grid, dim)], 1)


def vit_small(img_size: int = 224, patch_size: int = 16, layer_scale: float | None = None
              ) -> VisionTransformer:
    """ViT-S/16: 384 wide, 12 blocks, 6 heads; D = 384."""
    return VisionTransformer(img_size, patch_size, 384, 12, 6, 4.0, layer_scale)
