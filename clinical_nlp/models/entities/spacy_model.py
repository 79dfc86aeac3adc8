"""The spaCy kind: a fast BIO tagger (CNN tok2vec), optionally with MiniLM static vectors."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from clinical_nlp.errors import ConfigError, ModelError
from clinical_nlp.models.embeddings import default_transformer_dir, minilm_piece_table, piece_mean
from clinical_nlp.models.entities.base import EntityModel, read_model_meta
from clinical_nlp.models.entities.config import TrainConfig, bio_tags
from clinical_nlp.models.entities.evaluate import evaluate_entity_model
from clinical_nlp.models.entities.spans import PolicyStats, split_note_lines, tidy_spans, training_spans
from clinical_nlp.models.entities.tokenizer import register_fine_tokenizer
from clinical_nlp.models.entities.training import BestEpoch, best_epoch, end_of_epoch, log, progress_bar
from clinical_nlp.types import AnnotatedNote, Span


def _use_numpy_matmul(model: Any) -> None:
    """Run ``model``'s matrix products through numpy's BLAS instead of blis (thinc's default).

    Same arithmetic to about 1e-6 in the tag probabilities; on the 2-core AMD machine of
    RESULTS.md the tagger's forward passes over 80 notes of 4,000 characters took 1.45 s with
    blis and 0.95 s with numpy's OpenBLAS, both on one thread (``scripts/bench_scale.py``).
    """
    from thinc.api import NumpyOps

    if type(model.ops) is not NumpyOps:  # another backend (GPU, Apple): leave it
        return
    ops = NumpyOps(use_blis=False)
    for node in model.walk():
        node.ops = ops


class SpacyEntityModel(EntityModel):
    """Fast spaCy BIO tagger (CNN tok2vec) over :func:`fine_token_offsets` tokens."""

    kind = "spacy"
    #: dropout rate of the stochastic passes of :meth:`token_probabilities` (``mc_dropout > 0``)
    mc_dropout_rate: float = 0.1
    #: tokens per forward pass, about: small batches keep the CNN's arrays in the CPU cache (on
    #: 4,000-character notes 4 notes a pass ran 3.4x faster than 64, ``scripts/bench_scale.py``)
    batch_tokens: int = 2000

    def __init__(self, nlp, labels, meta, metrics=None, path=None):
        super().__init__(labels, meta, metrics, path)
        self.nlp = nlp
        tagger = nlp.get_pipe("tagger")
        _use_numpy_matmul(tagger.model)
        order = list(tagger.labels)
        missing = [t for t in self.tags if t not in order]
        # columns of the tagger output in our tag order (a tag never seen in training scores 0)
        self._cols = [order.index(t) if t in order else -1 for t in self.tags]
        if missing:
            self.meta.setdefault("unseen_tags", missing)

    def token_offsets(self, notes):
        return [[(t.idx, t.idx + len(t.text)) for t in self.nlp.make_doc(n.text)] for n in notes]

    def _probabilities(self, notes, stochastic):
        return self._doc_probabilities([self.nlp.make_doc(n.text) for n in notes], stochastic)

    def _doc_probabilities(self, docs, stochastic):
        """Per doc, its ``(n_tokens, n_tags)`` tag probabilities in :attr:`tags` order."""
        tagger = self.nlp.get_pipe("tagger")
        out: list[np.ndarray] = [np.zeros((0, len(self.tags))) for _ in docs]
        nonempty = [i for i, d in enumerate(docs) if len(d)]
        cols = np.array([max(c, 0) for c in self._cols])
        unseen = np.array([c < 0 for c in self._cols])
        for idx in _token_batches([len(docs[i]) for i in nonempty], self.batch_tokens):
            idx = [nonempty[k] for k in idx]
            batch = [docs[i] for i in idx]
            if stochastic:
                from thinc.api import set_dropout_rate

                set_dropout_rate(tagger.model, self.mc_dropout_rate)
                scores, _ = tagger.model.begin_update(batch)
            else:
                scores = tagger.model.predict(batch)
            for i, s in zip(idx, scores, strict=True):
                full = tagger.model.ops.to_numpy(s)[:, cols].astype(np.float64)
                full[:, unseen] = 0.0
                full /= np.clip(full.sum(axis=1, keepdims=True), 1e-12, None)
                out[i] = full
        return out

    def _tagger_predict(self, notes):
        """Viterbi over the tagger's probabilities (each note tokenised once)."""
        docs = [self.nlp.make_doc(n.text) for n in notes]
        offsets = [[(t.idx, t.idx + len(t.text)) for t in d] for d in docs]
        return self.calibrated(self._decode(notes, offsets, self._doc_probabilities(docs, stochastic=False)))

    def predict(self, notes):
        """Spans per note: from the NER when the pipeline has one, else Viterbi over the tagger."""
        notes = list(notes)
        if "ner" not in self.nlp.pipe_names or self.meta.get("decoder") == "tagger":
            return self._tagger_predict(notes)
        probs = self._probabilities(notes, stochastic=False)
        col = {t: j for j, t in enumerate(self.tags)}
        out = []
        docs = self.nlp.pipe([n.text for n in notes], disable=["tagger"], batch_size=64)
        for note, doc, p in zip(notes, docs, probs, strict=True):
            spans = []
            for ent in doc.ents:
                b, i = col.get(f"B-{ent.label_}"), col.get(f"I-{ent.label_}")
                rows = [p[ent.start, b]] + [p[k, i] for k in range(ent.start + 1, ent.end)] if b is not None else [0.0]
                start, end = ent.start_char, ent.end_char
                spans.append(
                    Span(
                        start,
                        end,
                        ent.label_,
                        note.text[start:end],
                        score=round(float(np.mean(rows)), 4),
                        source=self.source,
                    )
                )
            out.append(tidy_spans(note.text, spans))
        return self.calibrated(out)

    def _save_weights(self, path):
        self.nlp.to_disk(path / "spacy")

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any], metrics: dict[str, Any]) -> SpacyEntityModel:
        """The model saved under ``path`` (``meta``/``metrics``: its ``model.json``/``metrics.json``)."""
        import spacy

        register_fine_tokenizer()
        try:
            nlp = spacy.load(path / "spacy")
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot load spaCy weights: {exc}") from None
        return cls(nlp, meta.get("labels") or [], meta, metrics, path)


def _token_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Consecutive index groups whose lengths sum to at most ``budget`` (a longer item alone)."""
    groups: list[list[int]] = []
    total = 0
    for i, n in enumerate(lengths):
        if not groups or total + n > budget:
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += n
    return groups


#: the tag of a partially labelled token: "not outside an entity" (the tagger's negative prefix)
NOT_OUTSIDE = "!O"
#: a partial note's span of this label marks tokens outside every entity
OUTSIDE = "O"


def _partial_examples(nlp, docs: Sequence[AnnotatedNote], labels: Sequence[str]):
    """Examples that label only the tokens of each span of ``docs``: ``B-``/``I-`` of its label when
    the model learns that label, ``O`` for a span labelled :data:`OUTSIDE`, else :data:`NOT_OUTSIDE`
    ("an entity overlaps here", whatever its label or exact bounds); every other token is unknown."""
    from spacy.training import Example

    known = set(labels)
    examples = []
    for d in docs:
        pred = nlp.make_doc(d.text)
        tags = [""] * len(pred)
        for s in d.spans:
            inside = [t.i for t in pred if t.idx < s.end and s.start < t.idx + len(t.text) and not t.is_space]
            for k, i in enumerate(inside):
                if s.label == OUTSIDE:
                    tags[i] = OUTSIDE
                else:
                    tags[i] = f"{'I' if k else 'B'}-{s.label}" if s.label in known else NOT_OUTSIDE
        if any(t not in ("", OUTSIDE) for t in tags):  # a note with only O spans teaches nothing new
            examples.append(Example.from_dict(pred, {"tags": tags}))
    return examples


def _spacy_examples(nlp, docs, labels, stats, split_lines: bool = False):
    from spacy.training import Example

    examples = []
    if split_lines:
        docs = [piece for d in docs for piece in split_note_lines(d)]
    for d in docs:
        pred = nlp.make_doc(d.text)
        offs = [(t.idx, t.idx + len(t.text)) for t in pred]
        tags = ["O"] * len(pred)
        starts = {a: i for i, (a, _) in enumerate(offs)}
        ends = {b: i for i, (_, b) in enumerate(offs)}
        for s, e, label in training_spans(d, labels, stats):
            i, j = starts.get(s), ends.get(e)
            if i is None or j is None:  # span edge inside a token: expand to covering tokens
                cover = [k for k, (a, b) in enumerate(offs) if a < e and s < b]
                if not cover:
                    stats.dropped_unaligned += 1
                    continue
                i, j = cover[0], cover[-1]
            if any(t != "O" for t in tags[i : j + 1]):
                stats.dropped_overlap += 1
                continue
            tags[i] = f"B-{label}"
            for k in range(i + 1, j + 1):
                tags[k] = f"I-{label}"
        from spacy.training import iob_to_biluo

        examples.append(Example.from_dict(pred, {"tags": tags, "entities": iob_to_biluo(tags)}))
    return examples


def install_minilm_vectors(
    nlp, docs: Sequence[AnnotatedNote], model_dir: Path | str | None = None, dims: int = 0
) -> int:
    """Give ``nlp`` a static vector table (keyed by lower-cased form) built from the MiniLM
    word-piece embeddings: the MiniLM vocabulary's whole words plus every word of ``docs``
    (a word's vector = mean of its pieces' input embeddings), reduced to its first ``dims``
    principal components (fitted on the vocabulary's words) when ``0 < dims`` < 384.
    Returns the number of rows."""
    from spacy.vectors import Vectors

    tok, table, base_words, base_data = minilm_piece_table(str(model_dir or default_transformer_dir()))
    known = set(base_words)
    extra = sorted({t.lower_ for d in docs for t in nlp.make_doc(d.text) if not t.is_space} - known)
    words = list(base_words) + extra
    data = np.concatenate([base_data, np.stack([piece_mean(tok, table, w) for w in extra])]) if extra else base_data
    if 0 < dims < data.shape[1]:
        from sklearn.decomposition import PCA

        data = PCA(n_components=dims, svd_solver="full").fit(base_data).transform(data)
    for w in words:
        nlp.vocab.strings.add(w)
    nlp.vocab.vectors = Vectors(
        strings=nlp.vocab.strings,
        data=np.ascontiguousarray(data, dtype=np.float32),
        keys=words,
        name="clinical_nlp_minilm_pieces",
        attr="LOWER",
    )
    return len(words)


def train_spacy(
    train, dev, config: TrainConfig, meta, progress: bool, partial: Sequence[AnnotatedNote] = ()
) -> tuple[SpacyEntityModel, dict]:
    """Train the tagger on ``train`` (and the partially labelled ``partial`` notes, see
    :func:`_partial_examples`), early stopping on ``dev``."""
    import spacy
    from spacy.util import fix_random_seed, minibatch

    register_fine_tokenizer()
    fix_random_seed(config.seed)
    rng = random.Random(config.seed)
    tags = bio_tags(config.labels)
    stats = PolicyStats()
    if config.base_model is not None:
        base_meta = read_model_meta(config.base_model)
        if base_meta.get("kind") != SpacyEntityModel.kind:
            raise ConfigError(f"{config.base_model}: base model is {base_meta.get('kind')!r}, not a spaCy model")
        base = SpacyEntityModel.load(Path(config.base_model), base_meta, {})
        nlp = base.nlp
        tagger: Any = nlp.get_pipe("tagger")
        for t in tags:
            if t not in tagger.labels:
                raise ConfigError(f"{config.base_model}: base model lacks tag {t!r}; train from scratch")
        examples = _spacy_examples(nlp, train, config.labels, stats, config.split_lines)
        examples += _partial_examples(nlp, partial, config.labels)
        optimizer = nlp.resume_training()
    else:
        if config.tokenizer == "fine":
            nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "clinical_nlp.fine_tokenizer.v1"}}})
        else:
            nlp = spacy.blank("en")
        use_vectors = config.static_vectors
        if use_vectors:
            try:
                meta["static_vectors"] = install_minilm_vectors(nlp, [*train, *partial], dims=config.vector_dims)
            except ModelError as exc:  # the [ml] extra is not installed: train without vectors
                log.warning("static vectors skipped: %s", exc)
                use_vectors, meta["static_vectors"] = False, 0
        tok2vec = {
            "@architectures": "spacy.HashEmbedCNN.v2",
            "width": config.width,
            "depth": config.depth,
            "embed_size": 4000,
            "window_size": 1,
            "maxout_pieces": 3,
            "subword_features": True,
            "pretrained_vectors": True if use_vectors else None,
        }
        tagger = nlp.add_pipe(
            "tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": tok2vec, "normalize": True}}
        )
        for t in tags:
            tagger.add_label(t)
        if config.spacy_ner:
            ner: Any = nlp.add_pipe(
                "ner",
                config={
                    "model": {
                        "@architectures": "spacy.TransitionBasedParser.v2",
                        "state_type": "ner",
                        "extra_state_tokens": False,
                        "hidden_width": 64,
                        "maxout_pieces": 2,
                        "use_upper": True,
                        "nO": None,
                        "tok2vec": dict(tok2vec),
                    }
                },
            )
            for label in config.labels:
                ner.add_label(label)
        examples = _spacy_examples(nlp, train, config.labels, stats, config.split_lines)
        optimizer = nlp.initialize(lambda: examples)  # the tag set comes from the fully labelled notes
        examples += _partial_examples(nlp, partial, config.labels)
    if config.learning_rate is not None:
        optimizer.learn_rate = config.learning_rate
    history: list[dict[str, Any]] = []
    stopper = BestEpoch(config.patience)
    steps = 0
    # at least 4 updates per epoch: a handful of whole notes (an early AL round) still trains
    batch_size = max(1, min(config.batch_size, math.ceil(len(examples) / 4)))
    n_batches = (len(examples) + batch_size - 1) // batch_size
    bar = progress_bar(config.epochs * n_batches, "train entities (spacy)", progress)
    try:
        for epoch in range(config.epochs):
            rng.shuffle(examples)
            losses: dict[str, float] = {}
            for batch in minibatch(examples, size=batch_size):
                nlp.update(batch, drop=config.dropout, sgd=optimizer, losses=losses)
                steps += 1
                bar.update(1)
                if config.max_steps and steps >= config.max_steps:
                    break
            record: dict[str, Any] = {"epoch": epoch + 1, "loss": round(losses.get("tagger", 0.0), 4)}
            if "ner" in losses:
                record["ner_loss"] = round(losses["ner"], 4)
            model = SpacyEntityModel(nlp, config.labels, meta)
            if dev:
                # with a NER, score both decoders and keep the better one (the tagger wins on tiny data)
                scores = {}
                for decoder in ("ner", "tagger") if "ner" in nlp.pipe_names else ("tagger",):
                    model.meta["decoder"] = decoder
                    scores[decoder] = evaluate_entity_model(model, dev)["strict"]["micro"]["f1"]
                decoder = max(scores, key=lambda k: scores[k])
                f1 = scores[decoder]
                record["dev_strict_f1"] = round(f1, 4)
                record["decoder"] = decoder
                record.update({f"dev_strict_f1_{k}": round(v, 4) for k, v in scores.items()})
                bar.set_postfix(f1=f"{f1:.3f}")
                stopper.update(f1, lambda: (nlp.to_bytes(), decoder))  # noqa: B023  (called at once)
            if end_of_epoch(record, history, config, steps, stopper, bool(dev)):
                break
    finally:
        bar.close()
    if stopper.best is not None:
        weights, meta["decoder"] = stopper.best[1]
        nlp.from_bytes(weights)
    else:
        meta["decoder"] = "ner" if "ner" in nlp.pipe_names else "tagger"
    info = {
        "history": history,
        "steps": steps,
        "span_policy": asdict(stats),
        "best_epoch": best_epoch(history, bool(dev)),
    }
    return SpacyEntityModel(nlp, config.labels, meta), info
