"""Notes: loading, tokenising with spans, windows, classification, token attributions and attention."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from medai_core.workspaces.notes import pipeline as N
from medai_core.errors import EmptyInput, InputError, TooLarge, UnsupportedFormat
from medai_core.explain import EXPLAINERS
from medai_core.trust.randomisation import randomised_copy, rank_correlation
from medai_core.io.notes import MAX_NOTE_CHARS, load_notes
from medai_core.models import get_spec, load_model
from medai_core.models.notes_tfm import NOTES_SPEC, NotesTransformer
from medai_core.workspaces.notes.report import note_report
from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES
from medai_core.workspaces.notes.text import NUM, Vocab, tokenize, windows

CORPUS = ["the knee was scoped and the meniscus trimmed", "chest pain with troponin and ekg changes",
          "cataract removed by phacoemulsification of the lens", "the patient has a knee effusion"]


@pytest.fixture(scope="module")
def tiny():
    """A tiny untrained text model with 8-word windows, so windowing is exercised on short notes."""
    torch.manual_seed(0)
    vocab = Vocab.build(CORPUS, min_freq=1)
    spec = dataclasses.replace(NOTES_SPEC, labels=("a", "b", "c"), extra={**NOTES_SPEC.extra, "max_tokens": 8})
    model = NotesTransformer(n_classes=3, vocab_size=len(vocab), dim=16, depth=2, heads=2, max_len=9).eval()
    return model, spec, vocab


@pytest.fixture(scope="module")
def shipped():
    spec = get_spec("notes_tfm")
    return load_model("notes_tfm"), spec, N.load_vocab(spec)


def test_tokenize_keeps_spans_and_normalises():
    text = "BP 120/80, pt's knee-joint OK.\nNo pain."
    toks = tokenize(text)
    assert [text[a:b] for a, b in toks.spans] == ["BP", "120", "80", "pt's", "knee-joint", "OK", "No", "pain"]
    assert toks.words[:3] == ("bp", NUM, NUM)


def test_vocab_roundtrip_and_unknown():
    v = Vocab.build(CORPUS, min_freq=2)
    assert "knee" in v.stoi and "troponin" not in v.stoi
    assert Vocab.from_json(v.to_json()).itos == v.itos
    assert v.encode(["troponin"]) == [v.stoi["<unk>"]]


@pytest.mark.parametrize("n,length,expect", [(0, 4, [(0, 0)]), (3, 4, [(0, 3)]), (8, 4, [(0, 4), (4, 8)]),
                                             (9, 4, [(0, 4), (4, 8), (8, 9)])])
def test_windows_cover_every_token_once(n, length, expect):
    assert windows(n, length) == expect


@pytest.mark.parametrize("data,name,err,match", [
    (b"", "a.txt", EmptyInput, "empty"),
    (b"   \n\t", "a.txt", EmptyInput, "empty"),
    (b"\x00\x01\x02binary", "a.txt", UnsupportedFormat, "not a text file"),
    (b"1234 5678 !!!", "a.txt", InputError, "no words"),
    (b"note,author\nhello,me\n", "a.csv", InputError, "'text' column"),
    (b"id,text\n1,hello there\n1,again here\n", "a.csv", InputError, "Duplicate ids"),
    (b"id,text\n1,\n2,   \n", "a.csv", EmptyInput, "row 1: the note is empty"),  # no row left to score
    (b"text\n", "a.csv", EmptyInput, "no notes"),
    (b"x" * 10 + b" word" * (MAX_NOTE_CHARS // 5 + 10), "a.txt", TooLarge, "limit"),
])
def test_bad_note_files(data, name, err, match):
    with pytest.raises(err, match=match):
        load_notes(data, name)


def test_csv_notes_with_and_without_ids():
    notes = load_notes(b"id,text\nn1,knee pain\nn2,\"chest pain, troponin\"\n", "x.csv")
    assert [(n.key, n.ref) for n in notes] == [("id", "n1"), ("id", "n2")]
    notes = load_notes(b"text\nknee pain\n", "x.csv")
    assert notes[0].key == "file" and notes[0].ref == "x.csv:2"
    assert load_notes("naïve café".encode("cp1252"), "a.txt")[0].text == "naïve café"


def test_csv_empty_row_is_set_aside_not_refused():
    """Was a refusal of the whole file ("Row 3 is empty"); now the row is a DataChange and the rest loads."""
    notes = load_notes(b"id,text\n1,hello there\n2,\n", "a.csv")
    assert [n.ref for n in notes] == ["1"]
    assert [(c.row, c.value, c.action) for c in notes.changes] == [(2, "(empty)", "not scored")]


def test_note_report_lists_the_rows_set_aside(shipped):
    model, spec, vocab = shipped
    notes = load_notes(b"id,text\nn1,\nn2,knee pain after a fall\n", "a.csv")
    pred = N.classify(model, spec, vocab, notes[0].text)
    rep = note_report(notes[0].text, spec, vocab, pred, ref=notes[0].ref, data_changes=notes.changes)
    assert rep.data_changes == notes.changes and rep.data_changes[0].row == 1
    assert note_report(notes[0].text, spec, vocab, pred).data_changes == ()


def test_classify_reads_every_window(tiny):
    model, spec, vocab = tiny
    text = " ".join(CORPUS)  # 31 words -> 4 windows of 8
    enc = N.encode_note(text, vocab, spec)
    assert enc.n_windows == 4 and enc.ids.shape == (4, 9) and (enc.ids[:, 0] == vocab.stoi["<cls>"]).all()
    pred = N.classify(model, spec, vocab, enc)
    assert pred.n_windows == 4 and sum(pred.probabilities.values()) == pytest.approx(1.0)
    with torch.no_grad():
        manual = torch.softmax(model(enc.ids).mean(0), -1)
    np.testing.assert_allclose(list(pred.probabilities.values()), manual.numpy(), atol=1e-5)


@pytest.mark.parametrize("method", EXPLAINERS.names(modalities="text"))
def test_every_text_explainer_shape_and_completeness(tiny, method):
    model, spec, vocab = tiny
    text = " ".join(CORPUS)
    ta = N.explain_note(model, spec, vocab, text, "b", method, n_steps=64)
    assert ta.values.shape == (len(tokenize(text)),) and np.isfinite(ta.values).all()
    d = ta.explanation.diagnostics
    # completeness: attributions add up to the averaged logit difference from the all-padding baseline
    assert ta.values.sum() == pytest.approx(d["logit_difference"], abs=max(1e-3, 0.02 * abs(d["logit_difference"])))
    assert d["relative_delta"] < 0.05


def test_text_ig_adds_steps_until_the_completeness_error_is_small(tiny):
    model, spec, vocab = tiny
    text = " ".join(CORPUS)
    coarse = N.explain_note(model, spec, vocab, text, "b", n_steps=1, max_relative_delta=float("inf"))
    assert coarse.explanation.params["n_steps"] == 1  # no bound: the first pass is kept
    ta = N.explain_note(model, spec, vocab, text, "b", n_steps=1, max_relative_delta=0.01, max_steps=128)
    d, steps = ta.explanation.diagnostics, ta.explanation.params["n_steps"]
    assert coarse.explanation.diagnostics["relative_delta"] > 0.01  # one step is not enough on this model
    assert steps > 1 and d["relative_delta"] <= 0.01


def test_attention_is_a_distribution_per_window(tiny):
    model, spec, vocab = tiny
    enc = N.encode_note(" ".join(CORPUS), vocab, spec)
    att = N.note_attention(model, enc)
    assert att.shape == (2, 2, len(enc.tokens)) and (att >= 0).all()
    with torch.no_grad():
        _, weights = model.forward_with_attention(enc.ids)
    np.testing.assert_allclose(weights[0].sum(-1).numpy(), 1.0, atol=1e-5)


def test_highlight_escapes_html():
    toks = tokenize("<script>alert(1)</script> knee & pain")
    html = N.highlight_html(toks, np.linspace(-1, 1, len(toks)))
    assert "<script" not in html and "&lt;" in html and "&amp;" in html


def test_shipped_model_reads_synthetic_notes(shipped):
    model, spec, vocab = shipped
    expected = {"Knee arthroscopy (synthetic)": "Orthopedic", "Chest pain consult (synthetic)": "Cardiovascular / Pulmonary",
                "Cataract surgery (synthetic)": "Ophthalmology"}
    for name, text in SYNTHETIC_NOTES.items():
        pred = N.classify(model, spec, vocab, text)
        assert expected[name] in dict(pred.top(3)), (name, pred.top(3))


def test_shipped_model_attributions_point_at_specialty_words(shipped):
    model, spec, vocab = shipped
    text = SYNTHETIC_NOTES["Cataract surgery (synthetic)"]
    ta = N.explain_note(model, spec, vocab, text, "Ophthalmology")
    top = [w for w, v in N.top_words(ta.tokens, ta.values, 10) if v > 0]
    assert {"cataract", "phacoemulsification", "intraocular", "lens", "capsular", "corneal", "eye"} & set(top), top


def test_randomised_text_model_changes_attributions(shipped):
    """Model-randomisation sanity check (Adebayo et al. 2018) for the text explainer."""
    model, spec, vocab = shipped
    corrs = []
    for k, text in enumerate(SYNTHETIC_NOTES.values()):
        a = N.explain_note(model, spec, vocab, text, spec.labels[0]).values
        b = N.explain_note(randomised_copy(model, seed=k), spec, vocab, text, spec.labels[0]).values
        corrs.append(rank_correlation(a, b))
    assert np.median(corrs) < 0.3, corrs


def test_long_note_is_windowed_not_truncated(shipped):
    model, spec, vocab = shipped
    text = " ".join([SYNTHETIC_NOTES["Chest pain consult (synthetic)"]] * 20)
    enc = N.encode_note(text, vocab, spec)
    assert enc.n_windows > 1
    ta = N.explain_note(model, spec, vocab, enc, "Cardiovascular / Pulmonary", n_steps=8)
    assert ta.values.shape == (len(enc.tokens),)
