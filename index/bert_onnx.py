"""A BERT sentence encoder's ONNX graph built straight from its safetensors weights; the only module that imports onnx.

The graph is written in onnxruntime's fused contrib operators (com.microsoft): one EmbedLayerNormalization, then
per layer Attention, SkipLayerNormalization, BiasGelu and SkipLayerNormalization, with plain MatMuls for the
projections the fused ops leave out. It ends in mean pooling over the attention mask and L2 normalisation, so its
one output is the sentence vector. This is the graph onnxruntime's BERT optimiser made from a torch export, built
here without torch: reading the weights needs only safetensors' numpy loader.

Inputs ``input_ids`` and ``attention_mask`` (int64, ``[batch, seq]``, padding on the right: the fused attention
takes each row's length from the mask), output ``embedding`` (float32, ``[batch, hidden]``, unit rows).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from index.errors import NewsbotError

OPSET = 17
MS = "com.microsoft"
FLOAT = TensorProto.FLOAT  # the element type quantisers must assume for the fused ops' outputs
FFN_OUTPUT = "ffn_output"  # node-name suffix of each layer's feed-forward output projection (MatMul)
ATTENTION_OUTPUT = "attention_output"  # node-name suffix of each layer's attention output projection (MatMul)


@dataclass(frozen=True)
class BertConfig:
    """The few ``config.json`` fields the graph depends on."""

    layers: int
    hidden: int
    heads: int
    eps: float

    @classmethod
    def read(cls, model_dir: Path) -> BertConfig:
        raw = json.loads((model_dir / "config.json").read_text())
        if raw.get("model_type") != "bert" or raw.get("hidden_act") != "gelu" \
                or raw.get("position_embedding_type", "absolute") != "absolute":
            raise NewsbotError(f"{model_dir / 'config.json'}: not a plain BERT encoder with GELU and absolute "
                               "positions, the only architecture newsbot builds a graph for")
        return cls(layers=raw["num_hidden_layers"], hidden=raw["hidden_size"], heads=raw["num_attention_heads"],
                   eps=float(raw["layer_norm_eps"]))


def unquantised_nodes(model_dir: Path) -> list[str]:
    """Names of the MatMul nodes an int8 copy keeps fp32: the feed-forward output projections, whose GELU
    inputs have outliers that per-tensor activation quantisation cannot hold."""
    return [f"layer.{i}/{FFN_OUTPUT}" for i in range(BertConfig.read(model_dir).layers)]


def write_graph(model_dir: Path, out: Path) -> None:
    """Build the graph from ``model_dir``'s ``config.json`` and ``model.safetensors`` and write it to ``out``
    (atomically: a reader never sees half a file)."""
    model = build_graph(model_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        onnx.save_model(model, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_graph(model_dir: Path) -> onnx.ModelProto:
    """The fused, pooled and normalised encoder graph of the BERT model in ``model_dir``."""
    from safetensors.numpy import load_file

    cfg = BertConfig.read(model_dir)
    raw = load_file(str(model_dir / "model.safetensors"))
    weights = {k.removeprefix("bert."): v for k, v in raw.items()}
    inits: list[onnx.TensorProto] = []

    def init(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def w(key: str) -> np.ndarray:
        return weights[key].astype(np.float32)

    nodes: list[onnx.NodeProto] = [
        helper.make_node("Cast", ["input_ids"], ["ids32"], to=TensorProto.INT32, name="ids32"),
        helper.make_node("Cast", ["attention_mask"], ["mask32"], to=TensorProto.INT32, name="mask32"),
        helper.make_node("Shape", ["input_ids"], ["ids_shape"], name="ids_shape"),
        helper.make_node("ConstantOfShape", ["ids_shape"], ["segment_ids"], name="segment_ids",
                         value=numpy_helper.from_array(np.zeros(1, np.int32))),
        helper.make_node(
            "EmbedLayerNormalization",
            ["ids32", "segment_ids",
             init("word_embeddings", w("embeddings.word_embeddings.weight")),
             init("position_embeddings", w("embeddings.position_embeddings.weight")),
             init("segment_embeddings", w("embeddings.token_type_embeddings.weight")),
             init("embeddings_ln_gamma", w("embeddings.LayerNorm.weight")),
             init("embeddings_ln_beta", w("embeddings.LayerNorm.bias")),
             "mask32"],
            ["layer.-1/out", "mask_index"],  # mask_index: each row's length, what Attention masks with
            domain=MS, name="embeddings", epsilon=cfg.eps),
    ]
    hidden = "layer.-1/out"
    for i in range(cfg.layers):
        p, n = f"encoder.layer.{i}.", f"layer.{i}"
        qkv_w = np.concatenate([w(p + f"attention.self.{m}.weight").T for m in ("query", "key", "value")], axis=1)
        qkv_b = np.concatenate([w(p + f"attention.self.{m}.bias") for m in ("query", "key", "value")])
        nodes += [
            helper.make_node("Attention", [hidden, init(f"{n}/qkv_weight", qkv_w), init(f"{n}/qkv_bias", qkv_b),
                                           "mask_index"],
                             [f"{n}/context"], domain=MS, name=f"{n}/attention", num_heads=cfg.heads),
            helper.make_node("MatMul", [f"{n}/context", init(f"{n}/attention_out_weight",
                                                             w(p + "attention.output.dense.weight").T)],
                             [f"{n}/attention_out"], name=f"{n}/{ATTENTION_OUTPUT}"),
            helper.make_node("SkipLayerNormalization",
                             [f"{n}/attention_out", hidden,
                              init(f"{n}/attention_ln_gamma", w(p + "attention.output.LayerNorm.weight")),
                              init(f"{n}/attention_ln_beta", w(p + "attention.output.LayerNorm.bias")),
                              init(f"{n}/attention_out_bias", w(p + "attention.output.dense.bias"))],
                             [f"{n}/attention_ln"], domain=MS, name=f"{n}/attention_ln", epsilon=cfg.eps),
            helper.make_node("MatMul", [f"{n}/attention_ln", init(f"{n}/ffn_in_weight",
                                                                  w(p + "intermediate.dense.weight").T)],
                             [f"{n}/ffn_in"], name=f"{n}/ffn_input"),
            helper.make_node("BiasGelu", [f"{n}/ffn_in", init(f"{n}/ffn_in_bias", w(p + "intermediate.dense.bias"))],
                             [f"{n}/gelu"], domain=MS, name=f"{n}/gelu"),
            helper.make_node("MatMul", [f"{n}/gelu", init(f"{n}/ffn_out_weight", w(p + "output.dense.weight").T)],
                             [f"{n}/ffn_out"], name=f"{n}/{FFN_OUTPUT}"),
            helper.make_node("SkipLayerNormalization",
                             [f"{n}/ffn_out", f"{n}/attention_ln",
                              init(f"{n}/ffn_ln_gamma", w(p + "output.LayerNorm.weight")),
                              init(f"{n}/ffn_ln_beta", w(p + "output.LayerNorm.bias")),
                              init(f"{n}/ffn_out_bias", w(p + "output.dense.bias"))],
                             [f"{n}/out"], domain=MS, name=f"{n}/ffn_ln", epsilon=cfg.eps),
        ]
        hidden = f"{n}/out"

    # mean pooling over the real tokens, then L2 normalisation (sentence-transformers' Pooling + Normalize)
    nodes += [
        helper.make_node("Unsqueeze", ["attention_mask", init("axis_2", np.array([2], np.int64))], ["mask_3d"],
                         name="mask_3d"),
        helper.make_node("Cast", ["mask_3d"], ["mask_f"], to=FLOAT, name="mask_f"),
        helper.make_node("Mul", [hidden, "mask_f"], ["masked"], name="masked"),
        helper.make_node("ReduceSum", ["masked", init("axis_1", np.array([1], np.int64))], ["summed"],
                         keepdims=0, name="summed"),
        helper.make_node("ReduceSum", ["mask_f", "axis_1"], ["counts"], keepdims=0, name="counts"),
        helper.make_node("Clip", ["counts", init("min_count", np.array(1e-9, np.float32))], ["counts_safe"],
                         name="counts_safe"),
        helper.make_node("Div", ["summed", "counts_safe"], ["pooled"], name="pooled"),
        helper.make_node("ReduceL2", ["pooled"], ["norm"], axes=[-1], keepdims=1, name="norm"),
        helper.make_node("Clip", ["norm", init("min_norm", np.array(1e-12, np.float32))], ["norm_safe"],
                         name="norm_safe"),
        helper.make_node("Div", ["pooled", "norm_safe"], ["embedding"], name="embedding"),
    ]
    graph = helper.make_graph(
        nodes, "sentence_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("embedding", FLOAT, ["batch", cfg.hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)],
                              producer_name="newsbot")
    model.ir_version = 8  # readable by every onnxruntime newsbot supports (>= 1.20)
    return model
