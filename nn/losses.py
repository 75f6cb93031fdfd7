"""Teaching path: sparse categorical cross-entropy, computed from logits."""

from nn import kernels


class SparseCategoricalCrossentropy:
    """Mean cross-entropy of integer labels, computed from logits.

    from_logits=False (the default, as in Keras) means the model ends in a
    softmax; the model then hands this loss the softmax's input, so the loss is
    log-sum-exp stable and the gradient is the fused (p - onehot) / B, exactly
    what Keras does when a softmax output carries its logits. from_logits=True
    means the model's outputs already are logits.
    """

    name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)
        self.backend = kernels.get_backend("numpy")

    def forward(self, logits, labels):
        """Mean loss over the batch (0-d array) for logits (B, C), labels (B,) int."""
        loss, self._probs = self.backend.softmax_xent_forward(logits, labels)
        self._labels = labels
        return loss

    @property
    def probs(self):
        """The softmax of the last forward's logits, (B, C)."""
        return self._probs

    def backward(self):
        """Gradient of the mean loss w.r.t. the last logits: (p - onehot) / B."""
        return self.backend.softmax_xent_backward(self._probs, self._labels)

    def get_config(self):
        """Constructor arguments."""
        return {"from_logits": self.from_logits}
