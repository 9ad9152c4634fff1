"""Common interface of every registered classifier."""

from __future__ import annotations

from torch import Tensor, nn


class Classifier(nn.Module):
    """A classifier split into a feature extractor and a final linear ``head``.

    Subclasses set ``self.head`` and implement :meth:`forward_features`; ``forward(x)``
    is always ``head(forward_features(x))``.
    """

    head: nn.Linear

    def forward_features(self, x: Tensor) -> Tensor:
        """Penultimate feature vector of shape ``[B, D]``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``[B, num_classes]``."""
        return self.head(self.forward_features(x))
