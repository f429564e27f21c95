"""Train and evaluate the MTSamples specialty classifier; write weights, vocabulary and card.

Run: ``python -m medai_core notes train --data ../shared/data/mtsamples/mtsamples.csv.gz [--out assets]``.

Label rule (documented in the card):
1. Identical transcriptions are merged (MTSamples files the same note under several categories:
   1,750 of 3,994 rows are repeats), so no note can sit in both training and test.
2. Note types are not specialties and are dropped from each note's label set: ``NOT_SPECIALTIES``.
3. "Surgery", "Radiology" and "General Medicine" are the site's catch-all homes for operative
   reports, imaging reports and general notes: where a note also carries a specific specialty, that
   one is its label.
4. Notes that still carry two specialties are ambiguous and left out; specialties with fewer than
   ``MIN_NOTES`` distinct notes are left out.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from medai_core.models.notes_tfm import MAX_TOKENS, NOTES_LABELS, NOTES_SPEC, VOCAB_SIZE, NotesTransformer
from medai_core.models.spec import sha256_file
from medai_core.workspaces.notes.text import CLS, Vocab, tokenize
from medai_core.train.metrics import stratified_split, bootstrap_ci, expected_calibration_error, fit_temperature, reliability_bins, softmax

SEED = 20261123
MIN_NOTES = 40
NOT_SPECIALTIES = ("Consult - History and Phy.", "SOAP / Chart / Progress Notes", "Discharge Summary", "Letters",
                   "Office Notes", "Emergency Room Reports", "IME-QME-Work Comp etc.", "Autopsy")
CATCH_ALL = ("Surgery", "Radiology", "General Medicine")


@dataclass
class NotesData:
    texts: list[str]
    y: np.ndarray
    labels: tuple[str, ...]
    counts: dict[str, Any]


def label_notes(df: pd.DataFrame, min_notes: int = MIN_NOTES) -> tuple[list[str], list[str], dict[str, Any]]:
    """Apply the label rule (module docstring) to an MTSamples table; returns texts, labels, counts."""
    df = df.dropna(subset=["transcription"]).copy()
    df["t"] = df["transcription"].astype(str).str.strip()
    df = df[df["t"].str.len() > 0]
    groups = df.groupby("t", sort=True)["medical_specialty"].agg(lambda s: {str(x).strip() for x in s})
    texts, labels = [], []
    dropped_type = dropped_amb = 0
    for text, cats in groups.items():
        s = cats - set(NOT_SPECIALTIES)
        for generic in CATCH_ALL:
            if len(s) > 1 and generic in s:
                s = s - {generic}
        if not s:
            dropped_type += 1
        elif len(s) > 1:
            dropped_amb += 1
        else:
            texts.append(text)
            labels.append(next(iter(s)))
    vc = pd.Series(labels).value_counts()
    keep = set(vc[vc >= min_notes].index)
    out_t = [t for t, lab in zip(texts, labels) if lab in keep]
    out_l = [lab for lab in labels if lab in keep]
    counts = {"rows": int(len(df)), "distinct_notes": int(len(groups)), "note_type_only": dropped_type,
              "ambiguous": dropped_amb, "rare_specialty": int(len(texts) - len(out_t)), "kept": len(out_t),
              "per_label": {k: int(v) for k, v in pd.Series(out_l).value_counts().items()}}
    return out_t, out_l, counts


def load_mtsamples(path: Path) -> NotesData:
    df = pd.read_csv(path)
    texts, labels, counts = label_notes(df)
    if tuple(sorted(set(labels))) != tuple(sorted(NOTES_LABELS)):
        raise ValueError(f"label set differs from the registered one: {sorted(set(labels))}")
    index = {lab: i for i, lab in enumerate(NOTES_LABELS)}
    return NotesData(texts, np.array([index[lab] for lab in labels]), NOTES_LABELS, counts)


def split_indices(y: np.ndarray, seed: int = SEED) -> dict[str, np.ndarray]:
    return stratified_split(y, seed)


def _macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, average="macro", labels=np.arange(len(NOTES_LABELS)), zero_division=0))


def _report(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    pred = probs.argmax(1)
    top3 = np.argsort(-probs, 1)[:, :3]
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=np.arange(len(NOTES_LABELS)), zero_division=0)
    return {"n": int(len(y)), "macro_f1": _macro_f1(y, pred),
            "macro_f1_ci": list(bootstrap_ci(lambda a, b: _macro_f1(a, b), y, pred)),
            "accuracy": float(accuracy_score(y, pred)), "top3_accuracy": float((top3 == y[:, None]).any(1).mean()),
            "ece": expected_calibration_error(probs, y),
            "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "n": int(s[i])}
                          for i, lab in enumerate(NOTES_LABELS)}}


def tfidf_baseline(data: NotesData, split: dict[str, np.ndarray]) -> dict[str, Any]:
    """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression; C chosen on validation macro-F1."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts = np.array(data.texts, dtype=object)
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50000)
    xtr = vec.fit_transform(texts[split["train"]])
    best = None
    for c in (1.0, 10.0, 100.0):
        m = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(xtr, data.y[split["train"]])
        v = _macro_f1(data.y[split["val"]], m.predict(vec.transform(texts[split["val"]])))
        if best is None or v > best[0]:
            best = (v, c, m)
    v, c, m = best
    probs = m.predict_proba(vec.transform(texts[split["test"]]))
    return _report(data.y[split["test"]], probs) | {"model": f"TF-IDF 1-2 grams + logistic regression (C={c}, balanced, chosen on validation)",
                                                     "val_macro_f1": v}


def encode(vocab: Vocab, text: str) -> list[int]:
    return vocab.encode(tokenize(text).words)


def lsa_embeddings(vocab: Vocab, train_seqs: list[list[int]], dim: int, seed: int = SEED) -> torch.Tensor:
    """Initial word vectors from the training notes only: truncated SVD of the word x note TF-IDF
    matrix (latent semantic analysis, Deerwester et al. 1990), scaled to the embedding's usual size.
    Words that share notes start close together, which a 1,100-note corpus cannot teach from random."""
    from scipy.sparse import csr_matrix
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfTransformer

    rows, cols = [], []
    for d, s in enumerate(train_seqs):
        for w in set(s):
            rows.append(w)
            cols.append(d)
    counts = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(VOCAB_SIZE, len(train_seqs)))
    tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(counts.T).T  # words x notes
    vec = TruncatedSVD(dim, random_state=seed).fit_transform(tfidf)
    vec = vec / (np.linalg.norm(vec, axis=1, keepdims=True) + 1e-8) * 0.5
    vec[0] = 0.0  # padding stays a zero vector
    return torch.tensor(vec, dtype=torch.float32)


def _batch(seqs: list[list[int]], cls_id: int) -> torch.Tensor:
    t = max(len(s) for s in seqs) + 1
    out = torch.zeros(len(seqs), t, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, 0] = cls_id
        out[i, 1:len(s) + 1] = torch.tensor(s, dtype=torch.long)
    return out


@torch.no_grad()
def window_logits(model: NotesTransformer, seqs: list[list[int]], cls_id: int, length: int = MAX_TOKENS,
                  bs: int = 32) -> np.ndarray:
    """Mean of window logits per note (the same rule as ``medai_core.workspaces.notes.classify``)."""
    from medai_core.workspaces.notes.text import windows

    model.eval()
    chunks, owner = [], []
    for i, s in enumerate(seqs):
        for a, b in windows(len(s), length):
            chunks.append(s[a:b] or [1])
            owner.append(i)
    order = np.argsort([len(c) for c in chunks])
    out = np.zeros((len(chunks), model.head.out_features), dtype=np.float64)
    for k in range(0, len(order), bs):
        idx = order[k:k + bs]
        out[idx] = model(_batch([chunks[j] for j in idx], cls_id)).double().numpy()
    owner_a = np.array(owner)
    return np.stack([out[owner_a == i].mean(0) for i in range(len(seqs))])


def train_notes(csv_path: Path, out_dir: Path, *, epochs: int = 30, seed: int = SEED, dim: int = 128, depth: int = 2,
                heads: int = 4, lr: float = 1e-3, weight_decay: float = 0.05, batch_size: int = 32,
                crop: int = 256, word_dropout: float = 0.1, dropout: float = 0.1, label_smoothing: float = 0.1,
                patience: int = 15, lsa_init: bool = True, baseline: bool = True, log: Any = print) -> dict[str, Any]:
    """Train the shipped notes model; writes ``notes_tfm.pt``, the vocabulary, ``notes_tfm.json`` and the card.

    Training reads random ``crop``-token windows of each note (augmentation and speed); evaluation
    reads every window and averages the logits, as the app does.
    """
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_mtsamples(csv_path)
    split = split_indices(data.y, seed)
    vocab = Vocab.build([data.texts[i] for i in split["train"]], min_freq=2, max_size=VOCAB_SIZE)
    cls_id = vocab.stoi[CLS]
    seqs = [encode(vocab, t) for t in data.texts]
    model = NotesTransformer(dim=dim, depth=depth, heads=heads, dropout=dropout)
    if lsa_init:
        with torch.no_grad():
            model.embed.weight.copy_(lsa_embeddings(vocab, [seqs[i] for i in split["train"]], dim, seed))
    counts = np.bincount(data.y[split["train"]], minlength=len(NOTES_LABELS)).astype(float)
    class_w = torch.tensor((counts.sum() / counts / len(counts)) ** 0.5, dtype=torch.float32)
    steps = epochs * int(np.ceil(len(split["train"]) / batch_size))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    best = (-1.0, 0, None)
    history = []
    for epoch in range(epochs):
        model.train()
        perm = rng.permutation(split["train"])
        total = 0.0
        for k in range(0, len(perm), batch_size):
            b = perm[k:k + batch_size]
            batch = []
            for i in b:
                s = seqs[i]
                if len(s) > crop:
                    a = int(rng.integers(0, len(s) - crop + 1))
                    s = s[a:a + crop]
                s = [w if rng.random() >= word_dropout else 1 for w in s] or [1]
                batch.append(s)
            loss = F.cross_entropy(model(_batch(batch, cls_id)), torch.tensor(data.y[b]), weight=class_w,
                                   label_smoothing=label_smoothing)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        val_lg = window_logits(model, [seqs[i] for i in split["val"]], cls_id)
        f1 = _macro_f1(data.y[split["val"]], val_lg.argmax(1))
        history.append({"epoch": epoch + 1, "train_loss": total / len(perm), "val_macro_f1": f1})
        if f1 > best[0]:
            best = (f1, epoch + 1, {k: v.clone() for k, v in model.state_dict().items()})
        if log:
            log(f"epoch {epoch + 1} loss {total / len(perm):.4f} val macro-F1 {f1:.4f} (best {best[0]:.4f} @ {best[1]})")
        if epoch + 1 - best[1] >= patience:
            break
    model.load_state_dict(best[2])
    model.eval()
    val_lg = window_logits(model, [seqs[i] for i in split["val"]], cls_id)
    temp = fit_temperature(val_lg, data.y[split["val"]])
    model.temperature.fill_(temp)
    test_lg = window_logits(model, [seqs[i] for i in split["test"]], cls_id)
    y_test = data.y[split["test"]]
    lengths = np.array([len(s) for s in seqs])
    results: dict[str, Any] = {
        "model": NOTES_SPEC.name,
        "data": {"source": "MTSamples (mtsamples.com) via the clinspacy R package, CC0", **data.counts,
                 "split": {k: int(len(v)) for k, v in split.items()}, "seed": seed,
                 "tokens_per_note": {"median": int(np.median(lengths)), "p95": int(np.percentile(lengths, 95)),
                                     "max": int(lengths.max()), "share_over_window": float((lengths > MAX_TOKENS).mean())}},
        "labels": list(NOTES_LABELS), "vocab_size": len(vocab),
        "training": {"dim": dim, "depth": depth, "heads": heads, "lr": lr, "weight_decay": weight_decay,
                     "batch_size": batch_size, "crop": crop, "word_dropout": word_dropout, "dropout": dropout,
                     "label_smoothing": label_smoothing, "class_weights": "sqrt inverse frequency",
                     "embedding_init": "LSA of the training notes" if lsa_init else "random",
                     "epochs_run": len(history), "best_epoch": best[1], "seconds": round(time.perf_counter() - t0, 1),
                     "threads": torch.get_num_threads()},
        "history": history,
        "calibration": {"method": "temperature scaling on validation", "temperature": temp,
                        "ece_before": expected_calibration_error(softmax(test_lg), y_test)},
        "val": _report(data.y[split["val"]], softmax(val_lg, temp)),
        "test": _report(y_test, softmax(test_lg, temp)),
        "reliability_test": reliability_bins(softmax(test_lg, temp), y_test),
    }
    if baseline:
        results["baseline"] = tfidf_baseline(data, split)
    torch.save(model.state_dict(), out_dir / NOTES_SPEC.weights)
    (out_dir / NOTES_SPEC.extra["vocab"]).write_text(vocab.to_json())
    results["weights_sha256"] = sha256_file(out_dir / NOTES_SPEC.weights)
    results["vocab_sha256"] = sha256_file(out_dir / NOTES_SPEC.extra["vocab"])
    (out_dir / NOTES_SPEC.card_json).write_text(json.dumps(results, indent=1))
    (out_dir / NOTES_SPEC.card).write_text(card_markdown(results))
    return results


def _development(r: dict[str, Any]) -> str:
    dev = r.get("development")
    if not dev:
        return ""
    rows = "\n".join(f"| {d['run']} | {d['config']} | {d['val_macro_f1']:.3f} | {d['test_macro_f1']:.3f} |" for d in dev)
    return f"""## Development history
Configurations trained on the same split. The shipped one was chosen by **validation** macro-F1 before its
test figure was read; both test figures are shown so readers can judge the spread.

| run | configuration | val macro-F1 | test macro-F1 |
|---|---|---|---|
{rows}
"""


def card_markdown(r: dict[str, Any]) -> str:
    t, d, tr = r["test"], r["data"], r["training"]
    b = r.get("baseline")
    per = "\n".join(f"| {lab} | {d['per_label'].get(lab, 0)} | {m['n']} | {m['precision']:.2f} | {m['recall']:.2f} | "
                    f"{m['f1']:.2f} |" + (f" {b['per_class'][lab]['f1']:.2f} |" if b else "")
                    for lab, m in t["per_class"].items())
    lo, hi = t["macro_f1_ci"]
    base = ""
    if b:
        blo, bhi = b["macro_f1_ci"]
        base = (f"| baseline: {b['model']} | {b['macro_f1']:.3f} ({blo:.3f}-{bhi:.3f}) | {b['accuracy']:.3f} | "
                f"{b['top3_accuracy']:.3f} | {b['ece']:.3f} |\n")
        ratio = f"\nRatio of macro-F1, model / baseline: **{t['macro_f1'] / b['macro_f1']:.3f}**.\n"
    else:
        ratio = ""
    tok = d["tokens_per_note"]
    rel = "\n".join(f"| {x['lo']:.1f}-{x['hi']:.1f} | {x['n']} | {x['confidence']:.3f} | {x['accuracy']:.3f} |"
                     for x in r.get("reliability_test", []))
    return f"""# Model card: notes_tfm

**Specialty of a clinical transcription** (14 specialties). A small Transformer trained from scratch in this
repository on CPU. Decision support and demonstration only; not a medical device.

## Data and labels
- Source: MTSamples (mtsamples.com) sample medical transcriptions, de-identified samples written for
  transcriptionists, via the clinspacy R package (CC0). {d['rows']:,} rows with text.
- MTSamples files the same transcription under several categories. Identical texts were merged first
  ({d['distinct_notes']:,} distinct notes), so no note can be in two splits.
- Note types are not specialties and were removed from each note's categories: {', '.join(NOT_SPECIALTIES)}
  ({d['note_type_only']} notes had only note types).
- "Surgery", "Radiology" and "General Medicine" are catch-all homes for operative reports, imaging reports
  and general notes: where a note also carried a specific specialty, that one became its label. Notes
  left with two specialties ({d['ambiguous']}) are ambiguous and were left out, as were specialties with fewer
  than {MIN_NOTES} distinct notes ({d['rare_specialty']} notes). {d['kept']:,} notes remain.
- Split stratified by label, seed {d['seed']}: train {d['split']['train']}, validation {d['split']['val']},
  test {d['split']['test']}. Choices were made on validation; the test split was scored once for this card.

## Model
Word tokens (lower case, numbers as one token, vocabulary of the {r['vocab_size']:,} words seen in at least two
training notes; initialised by {tr.get('embedding_init', 'random')}), learned positions, {tr['depth']} pre-norm Transformer blocks (width {tr['dim']}, {tr['heads']} heads),
classifier on the CLS token and the mean token state. Trained on random {tr['crop']}-token crops with word dropout
{tr['word_dropout']}, label smoothing {tr['label_smoothing']}, {tr['class_weights']} class weights, AdamW + one-cycle
(lr {tr['lr']}), best validation macro-F1 at epoch {tr['best_epoch']}; {tr['seconds'] / 60:.1f} minutes on {tr['threads']} CPU threads.

**Long notes**: a window holds {MAX_TOKENS} tokens; longer notes are read in consecutive windows and the window
logits averaged (median note {tok['median']} tokens, 95th percentile {tok['p95']}, longest {tok['max']};
{100 * tok['share_over_window']:.0f}% of notes need more than one window).

## Test metrics (n = {t['n']})
| model | macro-F1 (95% CI) | accuracy | top-3 accuracy | ECE |
|---|---|---|---|---|
| **notes_tfm** | **{t['macro_f1']:.3f} ({lo:.3f}-{hi:.3f})** | {t['accuracy']:.3f} | {t['top3_accuracy']:.3f} | {t['ece']:.3f} |
{base}{ratio}
Calibration: temperature {r['calibration']['temperature']:.2f} fitted on validation; test ECE (top label)
{r['calibration']['ece_before']:.3f} before, {t['ece']:.3f} after. Reliability of the top label on test:

| confidence | n | mean confidence | accuracy |
|---|---|---|---|
{rel}

| specialty | notes | test n | precision | recall | F1 |{' baseline F1 |' if b else ''}
|---|---|---|---|---|---|{'---|' if b else ''}
{per}

{_development(r)}
## Explanations
Token attributions: Captum LayerIntegratedGradients on the word embeddings (baseline: every word replaced
by padding, positions kept), per window, summed over the embedding dimension; the convergence delta is
shown. Attention: the CLS token's attention to each word per layer and head.

## Intended use and limits
- Intended use: routing and teaching demonstrations of how a text model reads a note.
- MTSamples are sample transcriptions, not a hospital's records; their style and specialty mix differ from
  real notes. Specialties overlap (a neurosurgical spine note is also orthopaedic), and the label rule above
  decides such cases; the top-3 list is more meaningful than the top label.
- English only; specialties outside the 14 are forced into one of them.
"""
