"""MiniLM computations exported as ONNX graphs whose weights are named inputs, not stored in them.

Both exported models (assertion, :mod:`clinical_nlp.models.assertion_onnx`; relation pair scorer,
:mod:`clinical_nlp.models.relations_onnx`) freeze the packaged MiniLM's lower layers and fine-tune
a copy of its top. Their graphs (about 100 kB) take every weight as an input: loading feeds the
frozen ones from the checkpoint's own ``model.safetensors`` and the fine-tuned ones from the
model's ``weights.safetensors`` (safetensors' numpy reader), so nothing is stored twice and neither
torch nor transformers is imported at prediction time. A graph input named ``emb.*`` or
``base.<layer>.*`` comes from the checkpoint, ``top.*`` from the fine-tuned file; ``meta.json``
records the graph's hash and each input's source, checked on load.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.errors import ConfigError
from clinical_nlp.models.top_layers import META_FILE, WEIGHTS_FILE, base_weights_hash, file_sha

GRAPH_FILE = "graph.onnx"
BASE_WEIGHTS = "model.safetensors"
#: ONNX operator set of the exports (ONNX Runtime 1.17+ runs it).
OPSET = 17


def onnx_available(path: Path) -> bool:
    """Whether ONNX Runtime is installed and ``path`` holds an exported graph."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None and (path / GRAPH_FILE).exists()


def weight_source(name: str, n_base: int) -> str:
    """Where a graph input's weights come from: ``base:<key>`` (MiniLM checkpoint) or ``top:<key>``."""
    head, _, rest = name.partition(".")
    if head == "emb":
        return f"base:embeddings.{rest}"
    if head == "base":
        layer, _, tail = rest.partition(".")
        if int(layer) >= n_base:
            raise ConfigError(f"graph input {name!r} is not a frozen layer")
        return f"base:encoder.layer.{layer}.{tail}"
    if head == "top":
        return f"top:{rest}"
    raise ConfigError(f"graph input {name!r} has no known weights")


def frozen_base(base_dir: Path, top_layers: int, top: Any, tail: Callable[..., Any]) -> tuple[Any, int]:
    """``(module, number of frozen layers)``: the checkpoint's embeddings and frozen lower layers, then
    ``tail(top, states, attention_mask, *extra inputs)``. The submodules are named ``emb``, ``base``
    and ``top``: the names :func:`weight_source` maps to the two weight files."""
    import torch

    from clinical_nlp.models.embeddings import load_minilm
    from clinical_nlp.models.top_layers import run_layers

    _, encoder = load_minilm(str(base_dir))
    n_base = int(encoder.config.num_hidden_layers) - top_layers

    class Full(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = encoder.embeddings
            self.base = torch.nn.ModuleList(encoder.encoder.layer[:n_base])
            self.top = top

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any, *extra: Any) -> Any:
            h = self.emb(input_ids=input_ids, token_type_ids=token_type_ids)
            return tail(self.top, run_layers(self.base, h, attention_mask), attention_mask, *extra)

    return Full(), n_base


def export(
    module: Any,
    args: tuple,
    path: Path,
    input_names: list[str],
    output_names: list[str],
    axes: dict[str, dict[int, str]],
    n_base: int,
) -> str:
    """Trace ``module`` (submodules ``emb``, ``base``, ``top``) into ``path/graph.onnx``; returns its hash.

    The graph's hash and weight sources are added to ``path/meta.json`` (which must exist).
    """
    import onnxruntime as ort
    import torch

    tmp = path / f".{GRAPH_FILE}.tmp"
    module.train(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python-side shape checks
        torch.onnx.export(
            module,
            args,
            str(tmp),
            dynamo=False,
            export_params=False,
            do_constant_folding=False,
            opset_version=OPSET,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=axes,
        )
    tmp.chmod(0o644)
    tmp.replace(path / GRAPH_FILE)
    names = [i.name for i in ort.InferenceSession(str(path / GRAPH_FILE)).get_inputs()][len(input_names) :]
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    meta["onnx"] = {
        "graph": file_sha(path / GRAPH_FILE),
        "opset": OPSET,
        "weights": {n: weight_source(n, n_base) for n in names},
    }
    (path / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return str(meta["onnx"]["graph"])


def read_safetensors(path: Path, what: str) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as numpy arrays; ConfigError naming ``what`` otherwise."""
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found (run `make model`)") from None
    except Exception as exc:  # safetensors raises its own error types on a broken file
        raise ConfigError(f"{path}: not a safetensors file ({exc})") from None


def read_meta(path: Path, what: str) -> dict[str, Any]:
    """``path/meta.json``; ConfigError naming ``what`` when missing or unreadable."""
    try:
        return json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found (run `make model`)") from None
    except (json.JSONDecodeError, OSError) as exc:
        raise ConfigError(f"{path}: not a clinical-nlp {what} ({exc})") from None


def open_graph(path: Path, meta: dict[str, Any], base: Path) -> tuple[Any, dict[str, tuple[np.ndarray, Any]], dict]:
    """``(session, weights fed by name, fine-tuned tensors)`` of the graph in ``path``, every hash checked.

    The weights map each graph input to ``(array, OrtValue over it)``: fed by reference on every
    run, never copied. The fine-tuned tensors are returned too, for what runs outside the graph.
    """
    import onnxruntime as ort

    graph = meta.get("onnx")
    if not graph or not (path / GRAPH_FILE).exists():
        raise ConfigError(f"{path}: no ONNX graph (run `make model`)")
    if file_sha(path / GRAPH_FILE) != graph["graph"]:
        raise ConfigError(f"{path / GRAPH_FILE}: hash differs from meta.json; re-export the graph")
    if meta.get("base_weights") and base_weights_hash(base) != meta["base_weights"]:
        raise ConfigError(f"{path}: trained on base weights {meta['base_weights']}, not those in {base}")
    sources = {"base": read_safetensors(base / BASE_WEIGHTS, "base checkpoint weights")}
    sources["top"] = read_safetensors(path / WEIGHTS_FILE, "fine-tuned top weights")
    kept = {}
    for name, source in graph["weights"].items():
        side, _, key = source.partition(":")
        if key not in sources[side]:
            raise ConfigError(f"{path}: weights {source!r} missing for graph input {name!r}")
        arr = np.ascontiguousarray(sources[side][key], dtype=np.float32)
        kept[name] = (arr, ort.OrtValue.ortvalue_from_numpy(arr))
    session = ort.InferenceSession(str(path / GRAPH_FILE), providers=["CPUExecutionProvider"])
    return session, kept, sources["top"]


def run_graph(
    session: Any, weights: dict[str, tuple[np.ndarray, Any]], arrays: dict[str, np.ndarray], outputs: list[str]
) -> list[np.ndarray]:
    """``outputs`` of one run: the weights fed by reference (see :func:`open_graph`), plus ``arrays``."""
    from onnxruntime import OrtValue

    feed = {name: value for name, (_, value) in weights.items()}
    feed.update({k: OrtValue.ortvalue_from_numpy(v) for k, v in arrays.items()})
    return [v.numpy() for v in session.run_with_ort_values(outputs, feed)]


def pad_encodings(encs: list[Any]) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """``tokenizers`` encodings as the graphs' ``input_ids`` / ``attention_mask`` / ``token_type_ids``
    (int64, zero-padded to the longest), and each encoding's ``(pieces, 2)`` character offsets."""
    width = max(len(e.ids) for e in encs)
    arrays = {
        k: np.zeros((len(encs), width), dtype=np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")
    }
    offsets = []
    for i, e in enumerate(encs):
        n = len(e.ids)
        arrays["input_ids"][i, :n] = e.ids
        arrays["attention_mask"][i, :n] = e.attention_mask
        arrays["token_type_ids"][i, :n] = e.type_ids
        offsets.append(np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2))
    return arrays, offsets


def word_piece_tokenizer(base: Path, max_pieces: int, stride: int = 0) -> Any:
    """The checkpoint's ``tokenizer.json`` (Hugging Face ``tokenizers``): no padding, truncated (with
    ``stride`` pieces of overlap between overflowing windows) like the torch side's fast tokenizer."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_pieces, stride=stride)
    return tokenizer
