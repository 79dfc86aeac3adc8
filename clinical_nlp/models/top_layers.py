"""Saving and loading the fine-tuned top of a frozen MiniLM: the trainable layers and heads only.

Both MiniLM models (assertion, ``models/assertion_transformer.py``; PHI tagger,
``deid/transformer.py``) freeze the packaged encoder's lower layers and fine-tune a copy of its top
layers plus heads. Only that copy is written (fp16 safetensors, world-readable, replaced atomically)
with a ``meta.json`` that records the hash of the base weights; loading checks that hash, so a model
is never silently combined with another checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clinical_nlp.errors import ConfigError
from clinical_nlp.hashing import file_sha256

WEIGHTS_FILE = "weights.safetensors"
META_FILE = "meta.json"


def base_encoder(base_dir: Path | None, top_layers: int, seed: int) -> tuple[Path, Any]:
    """``(base directory, encoder)`` for a fresh top of ``top_layers`` layers (checked), torch seeded."""
    import torch

    from clinical_nlp.models.embeddings import default_transformer_dir, load_minilm

    base = Path(base_dir or default_transformer_dir())
    _, encoder = load_minilm(str(base))
    n = len(encoder.encoder.layer)
    if not 1 <= top_layers <= n:
        raise ConfigError(f"top_layers must be between 1 and {n}, got {top_layers}")
    torch.manual_seed(seed)
    return base, encoder


def trainable_top(encoder: Any, top_layers: int) -> Any:
    """A trainable copy (``torch.nn.ModuleList``) of the encoder's top ``top_layers`` layers."""
    import copy

    import torch

    return torch.nn.ModuleList(copy.deepcopy(encoder.encoder.layer[-top_layers:]))


def run_layers(layers: Any, h: Any, mask: Any) -> Any:
    """BERT layers over hidden states ``h`` (batch, pieces, hidden), ``mask`` 1 for real pieces, 0 for padding."""
    import torch

    add = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
    for layer in layers:
        h = layer(h, attention_mask=add)
    return h


def file_sha(path: Path) -> str:
    """sha256 of a file, first 16 hex digits (the form model metas record)."""
    return file_sha256(path)[:16]


def base_weights_hash(base_dir: Path) -> str:
    """Hash of the base checkpoint's weights file (``model.safetensors`` or ``pytorch_model.bin``)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (base_dir / name).exists():
            return file_sha(base_dir / name)
    raise ConfigError(f"{base_dir}: no model.safetensors or pytorch_model.bin")


def read_top(path: Path, what: str, base: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(meta, fp32 state dict)`` of a saved top; ConfigError if missing, broken or trained on other base weights."""
    from safetensors.torch import load_file

    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        state = load_file(str(path / WEIGHTS_FILE))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found (run `make model`)") from None
    except (json.JSONDecodeError, OSError) as exc:
        raise ConfigError(f"{path}: not a clinical-nlp {what} ({exc})") from None
    except Exception as exc:  # safetensors raises its own error types on a broken file
        raise ConfigError(f"{path / WEIGHTS_FILE}: not a safetensors file ({exc})") from None
    want = meta.get("base_weights")
    if want and base_weights_hash(base) != want:
        raise ConfigError(
            f"{path}: trained on base weights {want}, but {base} has {base_weights_hash(base)}; "
            "pass the checkpoint it was trained on or retrain"
        )
    return meta, {k: v.float() for k, v in state.items()}


def write_top(top: Any, path: Path, meta: dict[str, Any], base: Path) -> str:
    """Write ``top``'s weights (fp16) and ``meta`` (plus the base weights' hash); returns the weights' digest."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().half().contiguous() for k, v in top.state_dict().items()}
    tmp = path / f".{WEIGHTS_FILE}.tmp"
    save_file(state, str(tmp))
    tmp.chmod(0o644)  # safetensors writes owner-only files; a shipped model is world-readable
    tmp.replace(path / WEIGHTS_FILE)
    meta = {**meta, "base_weights": base_weights_hash(base)}
    (path / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return file_sha(path / WEIGHTS_FILE)[:12]
