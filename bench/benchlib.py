"""What the benchmarks share: where the project and the shared data are (the project goes on
``sys.path``, so a benchmark runs as ``python bench/NAME.py`` from anywhere), the parser they
start from (network, data set, number of images), the shared networks with their pixel
domain, and their population: the first N images the network classifies correctly."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MNIST_DATA = SHARED / "mnist" / "mnist_aigent_500.npz"
sys.path.insert(0, str(ROOT))


def bench_parser(doc: str, net: str = "mnist_784-50x6-10.h5", images: int = 20,
                 data: Path = MNIST_DATA) -> argparse.ArgumentParser:
    """A parser whose description is ``doc`` (example lines kept) with ``--net`` (a shared
    model by default), ``--data`` and ``--images``."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", default=str(SHARED / "models" / net),
                        help="network file (default: %(default)s)")
    parser.add_argument("--data", default=str(data),
                        help="data set .npz (default: %(default)s)")
    parser.add_argument("--images", type=int, default=images,
                        help="the first N correctly classified images (default: %(default)s)")
    return parser


def load_pixel_network(path):
    """The network of ``path``; one whose file states no input domain gets [0, 1] (the shared
    images are pixels in [0, 1], and the bounds and exact attacks need a bounded domain)."""
    from frontends import load_network
    from ir.network import Domain
    net = load_network(path)
    return net if net.domain is not None else net.with_domain(Domain.box(net.n_inputs))


def correctly_classified(net_path, data_path, n: int, path: Path) -> Path:
    """An .npz at ``path`` of the first n correctly classified images (``source_index``: their
    rows in the data set).  A run's ``--limit`` counts rows, so the benchmarks attack this."""
    from frontends import load_network
    from frontends.data import load_dataset
    net = load_network(net_path)
    x, y = load_dataset(data_path)
    keep = np.flatnonzero(np.argmax(net(x), axis=1) == y)[:n]
    np.savez(path, x=x[keep], y=y[keep], source_index=keep)
    return path
