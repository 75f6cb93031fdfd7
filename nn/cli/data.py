"""`nn data`: fetch and verify MNIST, print where it is."""


def add_parser(sub, common):
    """Register `data`."""
    data = sub.add_parser("data", parents=[common], help="fetch and verify MNIST, print where it is")
    data.set_defaults(func=run)


def run(args):
    """Fetch and verify MNIST; print where it is."""
    from nn.datasets import mnist

    ((x_train, _), (x_test, _)), where = mnist.locate(path=args.data_dir, verbose=True)
    print(f"MNIST verified (SHA-256 of all four IDX files): train {x_train.shape}, "
          f"test {x_test.shape}")
    print(f"Loaded from: {where}")
    return 0
