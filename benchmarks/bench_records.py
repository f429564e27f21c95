"""Records speed: score 10,000 structured records, explain one record, classify and explain one 1,000-word note.

Run: ``python benchmarks/bench_records.py [--repeats 9]``. Warm-up runs are discarded; medians and
inter-quartile ranges are reported (this machine is 2 noisy cores). Inputs are synthetic. Not a test.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import print_table  # noqa: E402

from medai_core.workspaces.notes import pipeline as N  # noqa: E402
from medai_core.workspaces.records import pipeline as R  # noqa: E402
from medai_core.io.records import load_records  # noqa: E402
from medai_core.models import get_spec, load_model  # noqa: E402
from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES  # noqa: E402
from medai_core.workspaces.records.samples import synthetic_records


def thousand_words() -> str:
    words = " ".join(SYNTHETIC_NOTES.values()).split()
    return " ".join((words * (1000 // len(words) + 1))[:1000])


def plain_captum_shapley(model, table):
    """What ``shapley_sampling`` computed before issue 18: Captum walking one order per pass."""
    import torch
    from captum.attr import ShapleyValueSampling

    from medai_core.explain.tabular import _Risk
    from medai_core.models.support_ftt import encode_records

    x, ref = encode_records(table.frame.iloc[[0]]), R.reference_record(model)
    mask = torch.arange(x.shape[1]).view(1, -1, 1).expand_as(x).contiguous()
    torch.manual_seed(0)
    with torch.no_grad():
        return ShapleyValueSampling(_Risk(model)).attribute(x, baselines=ref, target=0, feature_mask=mask, n_samples=64,
                                                            perturbations_per_eval=x.shape[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    import torch

    tspec, tmodel = get_spec("support_ftt"), load_model("support_ftt")
    csv10k = synthetic_records(10_000, seed=1).to_csv(index=False).encode()
    table10k = load_records(csv10k)
    one = load_records(synthetic_records(1, seed=2))
    nspec, nmodel = get_spec("notes_tfm"), load_model("notes_tfm")
    vocab = N.load_vocab(nspec)
    note = thousand_words()
    enc = N.encode_note(note, vocab, nspec)
    target = N.classify(nmodel, nspec, vocab, enc).label
    rows = [
        ("score 10,000 records (table already validated)", lambda: R.score(tmodel, tspec, table10k)),
        ("read + validate + score 10,000 records from CSV bytes", lambda: R.score(tmodel, tspec, load_records(csv10k))),
        ("explain one record: Shapley value sampling, 64 permutations", lambda: R.explain_record(tmodel, tspec, one, 0, "shapley_sampling")),
        ("  baseline: plain Captum ShapleyValueSampling, same 64 permutations (one pass per order)",
         lambda: plain_captum_shapley(tmodel, one)),
        ("explain one record: Integrated Gradients, 64 steps", lambda: R.explain_record(tmodel, tspec, one, 0, "integrated_gradients")),
        ("attention map of one record", lambda: R.attention(tmodel, one, 0)),
        (f"classify one 1,000-word note ({len(enc.tokens)} tokens, {enc.n_windows} windows)", lambda: N.classify(nmodel, nspec, vocab, note)),
        ("token attributions for one 1,000-word note: LayerIntegratedGradients, 32 steps",
         lambda: N.explain_note(nmodel, nspec, vocab, note, target)),
        ("classify + token-attribute one 1,000-word note",
         lambda: (N.classify(nmodel, nspec, vocab, note), N.explain_note(nmodel, nspec, vocab, note, target))),
    ]
    print_table(f"# support_ftt and notes_tfm on CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} after warm-up", rows, args.repeats)


if __name__ == "__main__":
    main()
