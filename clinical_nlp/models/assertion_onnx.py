"""The MiniLM assertion model run by ONNX Runtime: no torch or transformers at prediction time.

Importing torch and ``transformers.BertModel`` costs about 4 s of a process's life, more than the
whole of medspaCy's ConText run on a thousand rows. ``make model`` therefore also exports the
assertion model's computation (embeddings, the frozen lower layers, the fine-tuned top and the
heads) as an ONNX graph whose weights are *named inputs*, not stored in it (``graph.onnx``, about
100 kB). Loading feeds it the packaged MiniLM's own weights (``model.safetensors``, read with
safetensors' numpy reader) and the shipped fine-tuned top (``weights.safetensors``), so nothing is
stored twice; the hash checks of :mod:`clinical_nlp.models.top_layers` apply, plus the graph's own
hash recorded in ``meta.json``. Tokenisation is the checkpoint's ``tokenizer.json`` read by
Hugging Face ``tokenizers``, the library behind the fast tokenizer the torch model uses, so both
see the same word pieces (``tests/unit/test_assertion_onnx.py`` compares the two models' logits).

Example:
    >>> model = OnnxAssertionModel.load(DEFAULT_TRANSFORMER_DIR)  # doctest: +SKIP
    >>> model.predict_proba([("No fever today.", 3, 8)])[0]["negation"]["negated"] > 0.9  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.errors import ConfigError
from clinical_nlp.models.assertion_transformer import (
    CLASSES,
    DEFAULT_TRANSFORMER_DIR,
    MAX_PIECES,
    calibrated,
    marked,
)
from clinical_nlp.models.top_layers import META_FILE, WEIGHTS_FILE, base_weights_hash, file_sha

GRAPH_FILE = "graph.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids", "concept")
BASE_WEIGHTS = "model.safetensors"
#: ONNX operator set of the export (ONNX Runtime 1.17+ runs it).
OPSET = 17


def onnx_available(path: Path = DEFAULT_TRANSFORMER_DIR) -> bool:
    """Whether ONNX Runtime is installed and ``path`` holds an exported graph."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None and (path / GRAPH_FILE).exists()


# ---------------------------------------------------------------------- export (make model; needs torch)
def _weight_source(name: str, n_base: int) -> str:
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


def export_graph(model: Any, path: Path | str) -> str:
    """Write ``model``'s (a saved :class:`TransformerAssertionModel`) graph to ``path``; returns its hash.

    ``path`` must be the directory the model was saved to: the graph's weight sources and hash are
    added to its ``meta.json``.
    """
    import torch

    from clinical_nlp.models.embeddings import load_minilm
    from clinical_nlp.models.top_layers import run_layers

    p = Path(path)
    _, encoder = load_minilm(str(model.base_dir))
    n_base = int(encoder.config.num_hidden_layers) - model.top_layers

    class Full(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = encoder.embeddings
            self.base = torch.nn.ModuleList(encoder.encoder.layer[:n_base])
            self.top = model.top

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any, concept: Any) -> tuple:
            h = self.emb(input_ids=input_ids, token_type_ids=token_type_ids)
            out = self.top(run_layers(self.base, h, attention_mask), attention_mask, concept)
            return tuple(out[a] for a in CLASSES)

    full = Full()
    full.train(False)
    model.top.train(False)
    batch = model.encode([("No fever today.", 3, 8), ("History of diabetes mellitus in the past year.", 11, 28)])
    args = tuple(batch["enc"][k] for k in INPUTS[:3]) + (batch["concept"],)
    axes = {k: {0: "rows", 1: "pieces"} for k in INPUTS} | {a: {0: "rows"} for a in CLASSES}
    tmp = p / f".{GRAPH_FILE}.tmp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python-side shape checks
        torch.onnx.export(
            full,
            args,
            str(tmp),
            dynamo=False,
            export_params=False,
            do_constant_folding=False,
            opset_version=OPSET,
            input_names=list(INPUTS),
            output_names=list(CLASSES),
            dynamic_axes=axes,
        )
    tmp.chmod(0o644)
    tmp.replace(p / GRAPH_FILE)
    import onnxruntime as ort

    names = [i.name for i in ort.InferenceSession(str(p / GRAPH_FILE)).get_inputs()][len(INPUTS) :]
    meta = json.loads((p / META_FILE).read_text(encoding="utf-8"))
    meta["onnx"] = {
        "graph": file_sha(p / GRAPH_FILE),
        "opset": OPSET,
        "weights": {n: _weight_source(n, n_base) for n in names},
    }
    (p / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return str(meta["onnx"]["graph"])


# ---------------------------------------------------------------------- prediction (numpy + onnxruntime)
def _read_safetensors(path: Path, what: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found (run `make model`)") from None
    except Exception as exc:  # safetensors raises its own error types on a broken file
        raise ConfigError(f"{path}: not a safetensors file ({exc})") from None


@dataclass
class OnnxAssertionModel:
    """The exported assertion model: same ``predict_proba``, ``name`` and ``meta`` as the torch one."""

    session: Any
    tokenizer: Any
    temperatures: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    #: graph input name -> (array, OrtValue over it): fed by reference on every run, never copied.
    weights: dict[str, tuple[np.ndarray, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path | str = DEFAULT_TRANSFORMER_DIR, base_dir: Path | None = None) -> OnnxAssertionModel:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from clinical_nlp.models.embeddings import default_transformer_dir

        p = Path(path)
        base = Path(base_dir or default_transformer_dir())
        try:
            meta = json.loads((p / META_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: transformer assertion model not found (run `make model`)") from None
        except (json.JSONDecodeError, OSError) as exc:
            raise ConfigError(f"{p}: not a clinical-nlp transformer assertion model ({exc})") from None
        graph = meta.get("onnx")
        if not graph or not (p / GRAPH_FILE).exists():
            raise ConfigError(f"{p}: no ONNX graph (run `make model` or scripts/export_assertion_onnx.py)")
        if file_sha(p / GRAPH_FILE) != graph["graph"]:
            raise ConfigError(f"{p / GRAPH_FILE}: hash differs from meta.json; re-export the graph")
        if meta.get("base_weights") and base_weights_hash(base) != meta["base_weights"]:
            raise ConfigError(f"{p}: trained on base weights {meta['base_weights']}, not those in {base}")
        sources = {"base": _read_safetensors(base / BASE_WEIGHTS, "base checkpoint weights")}
        sources["top"] = _read_safetensors(p / WEIGHTS_FILE, "fine-tuned top weights")
        kept = {}
        for name, source in graph["weights"].items():
            side, _, key = source.partition(":")
            if key not in sources[side]:
                raise ConfigError(f"{p}: weights {source!r} missing for graph input {name!r}")
            arr = np.ascontiguousarray(sources[side][key], dtype=np.float32)
            kept[name] = (arr, ort.OrtValue.ortvalue_from_numpy(arr))
        session = ort.InferenceSession(str(p / GRAPH_FILE), providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=MAX_PIECES)
        temps = {a: float(t) for a, t in meta["temperatures"].items()}
        return cls(session, tokenizer, temps, meta, file_sha(p / WEIGHTS_FILE)[:12], kept)

    @property
    def name(self) -> str:
        return f"{self.meta.get('name', 'assertion-minilm')}@{self.meta.get('version', '0')}+{self.digest}"

    def encode(self, rows: Sequence[tuple[str, int, int]], sections: Sequence[str | None] | None = None) -> dict:
        """The graph's four inputs for ``rows`` (padded to the longest row)."""
        marks = [marked(t, s, e, sections[i] if sections else None) for i, (t, s, e) in enumerate(rows)]
        encs = self.tokenizer.encode_batch([m[0] for m in marks])
        width = max(len(e.ids) for e in encs)
        out = {k: np.zeros((len(rows), width), dtype=np.int64) for k in INPUTS[:3]}
        concept = np.zeros((len(rows), width), dtype=bool)
        for i, (e, (_, lo, hi)) in enumerate(zip(encs, marks, strict=True)):
            n = len(e.ids)
            out["input_ids"][i, :n] = e.ids
            out["attention_mask"][i, :n] = e.attention_mask
            out["token_type_ids"][i, :n] = e.type_ids
            spans = np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2)
            concept[i, :n] = (spans[:, 0] >= lo) & (spans[:, 1] <= hi) & (spans[:, 1] > spans[:, 0])
        return {**out, "concept": concept}

    def logits(self, rows: Sequence[tuple[str, int, int]], batch_size: int = 64, sections=None) -> dict[str, Any]:
        """Uncalibrated logits per attribute, ``(n_rows, n_classes)`` arrays, rows in input order."""
        from onnxruntime import OrtValue

        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        out = {a: np.zeros((len(rows), len(c)), dtype=np.float32) for a, c in CLASSES.items()}
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            batch = self.encode([rows[i] for i in idx], [sections[i] for i in idx] if sections else None)
            feed = {name: value for name, (_, value) in self.weights.items()}
            feed.update({k: OrtValue.ortvalue_from_numpy(v) for k, v in batch.items()})
            for a, v in zip(CLASSES, self.session.run_with_ort_values(list(CLASSES), feed), strict=True):
                out[a][idx] = v.numpy()
        return out

    def predict_proba(self, rows: Sequence[tuple[str, int, int]], batch_size: int = 64, sections=None) -> list[dict]:
        """One ``{attribute: {class: probability}}`` per row (temperature-scaled softmax)."""
        return calibrated(self.logits(rows, batch_size, sections), self.temperatures)
