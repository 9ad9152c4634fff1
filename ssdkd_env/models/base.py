"""Common interface of every registered classifier."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn


class Classifier(nn.Module):
    """A classifier split into a feature extractor and a final linear ``head``.

    Subclasses set ``self.head`` and implement :meth:`forward_features`; ``forward(x)``
    is always ``head(forward_features(x))``.
    """

    head: nn.Linear
    # True for feed-forward chains without skip connections: a narrower student of the same
    # class can then start as a width-pruned copy of the teacher (models/slicing.py)
    plain_chain: ClassVar[bool] = False

    def forward_features(self, x: Tensor) -> Tensor:
        """Penultimate feature vector of shape ``[B, D]``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``[B, num_classes]``."""
        return self.head(self.forward_features(x))
