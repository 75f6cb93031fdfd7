"""`nn data`: fetch and verify a data set (MNIST by default), print where it is."""

from nn.cli._common import add_dataset_argument


def add_parser(sub, common):
    """Register `data`."""
    data = sub.add_parser("data", parents=[common], help="fetch and verify MNIST (or --dataset), "
                          "print where it is")
    add_dataset_argument(data)
    data.set_defaults(func=run)


def run(args):
    """Fetch and verify the data set; print where it is."""
    from nn.datasets import DATASETS

    loader = DATASETS[args.dataset]
    ((x_train, _), (x_test, _)), where = loader.locate(path=args.data_dir, verbose=True)
    print(f"{loader.TITLE} verified (SHA-256 of all four IDX files): train {x_train.shape}, "
          f"test {x_test.shape}")
    print(f"Loaded from: {where}")
    return 0
