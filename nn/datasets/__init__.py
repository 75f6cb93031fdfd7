from nn.datasets import mnist

__all__ = ["mnist"]
