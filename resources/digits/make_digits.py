"""Build resources/digits/optdigits.csv.gz, the embedded default data set.

Source: UCI Machine Learning Repository, "Optical Recognition of Handwritten Digits"
(E. Alpaydin, C. Kaynak, 1998), licence CC BY 4.0. The 1797-image copy used here is the one
scikit-learn ships as sklearn/datasets/data/digits.csv.gz (the UCI test set, 8x8 images of
integers 0..16). This script re-writes it in the same plain text layout (64 pixel values then
the label per line, gzip-compressed), so the file can be checked and rebuilt:

    pip install scikit-learn && python resources/digits/make_digits.py

or, from UCI's original files: python resources/digits/make_digits.py optdigits.tes
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("optdigits.csv.gz")


def load_source(argv: list[str]) -> np.ndarray:
    if argv:
        return np.loadtxt(argv[0], delimiter=",", dtype=np.int64)
    import sklearn.datasets as skd

    src = Path(skd.__file__).parent / "data" / "digits.csv.gz"
    return np.loadtxt(src, delimiter=",", dtype=np.int64)


def main(argv: list[str]) -> None:
    table = load_source(argv)
    assert table.shape[1] == 65 and table[:, :64].max() <= 16 and set(table[:, 64]) <= set(range(10))
    with gzip.GzipFile(OUT, "wb", mtime=0) as fh:
        for row in table:
            fh.write((",".join(str(int(v)) for v in row) + "\n").encode())
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(table)} images)")


if __name__ == "__main__":
    main(sys.argv[1:])
