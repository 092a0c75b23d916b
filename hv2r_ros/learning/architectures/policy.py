"""Goal-conditioned policies: (camera embeddings, goal embedding, proprio) -> action chunk.

Both take and return the contract's normalised tensors: ``proprio`` already normalised with the
policy's proprio_mean/std, ``actions`` normalised (the runtime de-normalises with
action_mean/std). Embeddings are raw encoder outputs; each is LayerNorm-ed inside, because
encoders such as R3M emit features of large, encoder-dependent scale.
"""

from __future__ import annotations

import torch
from torch import nn

from hv2r_ros.learning.architectures.vit import Block


class MlpPolicy(nn.Module):
    """MLP over the concatenated, normalised inputs.

    Args:
        num_cameras: C, cameras per step.
        embedding_size: D, encoder embedding size (cameras and goal alike).
        proprio_size: P, length of the proprio vector.
        chunk_length: H, actions per inference.
        action_size: A, length of one action row.
        hidden: Width of the hidden layers.
        depth: Hidden layers (>= 1).

    Inputs: camera_embeddings (B, C, D), goal_embedding (B, D), proprio (B, P).
    Output: actions (B, H, A).
    """

    def __init__(self, num_cameras: int, embedding_size: int, proprio_size: int,
                 chunk_length: int, action_size: int, hidden: int = 512, depth: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.shape = (num_cameras, embedding_size, proprio_size, chunk_length, action_size)
        self.embed_norm = nn.LayerNorm(embedding_size)
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        width = (num_cameras + 1) * embedding_size + proprio_size
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.GELU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, chunk_length * action_size)

    def forward(self, camera_embeddings: torch.Tensor, goal_embedding: torch.Tensor,
                proprio: torch.Tensor) -> torch.Tensor:
        """(B, C, D), (B, D), (B, P) -> (B, H, A)."""
        batch = proprio.shape[0]
        embeddings = self.embed_norm(torch.cat([camera_embeddings, goal_embedding[:, None]], 1))
        x = torch.cat([embeddings.flatten(1), proprio], dim=1)
        _, _, _, horizon, action = self.shape
        return self.head(self.trunk(x)).reshape(batch, horizon, action)


class TransformerPolicy(nn.Module):
    """Small transformer: one token per camera, goal and proprio, plus H action queries.

    Every input token is projected to ``width`` and gets a learned type/position embedding;
    the H query tokens attend to everything and each is read out to one action row.

    Args:
        num_cameras: C. embedding_size: D. proprio_size: P. chunk_length: H.
        action_size: A.
        width: Token width. depth: Transformer blocks. num_heads: Attention heads.

    Inputs: camera_embeddings (B, C, D), goal_embedding (B, D), proprio (B, P).
    Output: actions (B, H, A).
    """

    def __init__(self, num_cameras: int, embedding_size: int, proprio_size: int,
                 chunk_length: int, action_size: int, width: int = 256, depth: int = 4,
                 num_heads: int = 4) -> None:
        super().__init__()
        self.shape = (num_cameras, embedding_size, proprio_size, chunk_length, action_size)
        self.embed_norm = nn.LayerNorm(embedding_size)
        self.embed_proj = nn.Linear(embedding_size, width)
        self.proprio_proj = nn.Linear(proprio_size, width)
        self.queries = nn.Parameter(torch.randn(1, chunk_length, width) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, num_cameras + 2, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, action_size)

    def forward(self, camera_embeddings: torch.Tensor, goal_embedding: torch.Tensor,
                proprio: torch.Tensor) -> torch.Tensor:
        """(B, C, D), (B, D), (B, P) -> (B, H, A)."""
        embeddings = self.embed_norm(torch.cat([camera_embeddings, goal_embedding[:, None]], 1))
        tokens = torch.cat([self.embed_proj(embeddings), self.proprio_proj(proprio)[:, None]], 1)
        queries = self.queries.expand(proprio.shape[0], -1, -1)
        x = torch.cat([tokens + self.pos_embed, queries], dim=1)
        for block in self.blocks:
            x = block(x)
        horizon = self.shape[3]
        return self.head(self.norm(x[:, -horizon:]))
