"""Detectors of every lens and the pytorch-ood baselines (issue 11), on the digits study."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from introspect import NotFittedError
from introspect.detect import (
    CPLScorer,
    EnergyScorer,
    MSPScorer,
    Probe,
    detection_metrics,
    make_detectors,
)

# small, fast lens settings: the session's digits study has 20 images per class per split
OPTIONS = dict(
    selfintro=dict(
        vae=dict(hidden=(32,), epochs=4, batch_size=64),
        estimator=dict(hidden=(16,), epochs=4, batch_size=64),
    ),
    telescope=dict(size=8, epochs=2),
    library=dict(theta=0.8),
)


@pytest.fixture(scope="module")
def fitted(digits_study):
    dets = make_detectors(digits_study, options=OPTIONS)
    for d in dets.values():
        d.fit(digits_study)
    return dets


@pytest.fixture(scope="module")
def table(digits_study):
    return digits_study.detect(["pgd", "uniform"], eps=[0.3], n=120, options=OPTIONS, nb_iter=10)


def test_metrics_have_known_answers():
    m = detection_metrics([0, 1, 2], [3, 4, 5])
    assert m == dict(auroc=1.0, aupr=1.0, tpr_at_fpr=1.0)
    m = detection_metrics([3, 4, 5], [0, 1, 2])
    assert m["auroc"] == 0.0 and m["tpr_at_fpr"] == 0.0
    # one of four negatives above every positive: 25 % FPR is needed for any TPR
    m = detection_metrics([0, 0, 0, 9], [5, 5])
    assert m["auroc"] == pytest.approx(0.75) and m["tpr_at_fpr"] == 0.0
    assert np.isnan(detection_metrics([], [1.0])["auroc"])


def test_every_lens_and_baseline_is_there(digits_study):
    names = set(make_detectors(digits_study))
    for layer in digits_study.layers:
        assert f"library.agreement[{layer}]" in names
        assert f"telescope.dclass[{layer}]" in names
    assert {
        "library.cpl", "selfintro.error", "selfintro.reconstruction", "telescope.dclass",
        "manifolds.residual", "msp", "energy", "mahalanobis", "mahalanobis.multi", "knn", "vim",
    } <= names  # fmt: skip
    lens = make_detectors(digits_study, ["telescope"])
    assert set(lens) == {n for n in names if n.startswith("telescope.")}


def test_detectors_fit_on_the_train_split_only(digits_study, monkeypatch):
    seen = []
    real = type(digits_study).capture

    def spy(self, reducer="codes", split=None, layers=None, com="flat", **kw):
        seen.append(split)
        return real(self, reducer, split, layers, com, **kw)

    monkeypatch.setattr(type(digits_study), "capture", spy)
    for d in make_detectors(digits_study, ["manifolds", "baseline"], OPTIONS).values():
        d.fit(digits_study)
    assert seen and set(seen) == {"train"}


def test_clean_halves_score_at_chance_and_foreign_inputs_far_above(digits_study, fitted):
    """Two halves of the clean test set are the same distribution (AUROC ~ 0.5 for every
    detector); digits with their ink inverted are far outside the training data."""
    x = digits_study.images("test")
    y = digits_study.labels("test")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    a, b = Probe(digits_study, x[order[::2]]), Probe(digits_study, x[order[1::2]])
    inv = Probe(digits_study, 1.0 - x[order[::2]])
    for name, d in fitted.items():
        sa, sb = d.score(a), d.score(b)
        assert sa.shape == (len(a),) and np.isfinite(sa).all(), name
        assert abs(detection_metrics(sa, sb)["auroc"] - 0.5) < 0.15, name
    for name in ("mahalanobis", "mahalanobis.multi", "manifolds.residual", "vim"):
        auc = detection_metrics(fitted[name].score(a), fitted[name].score(inv))["auroc"]
        assert auc > 0.95, (name, auc)
    assert len(np.unique(y)) == digits_study.n_classes


def test_msp_and_energy_are_the_textbook_formulas(digits_study, fitted):
    x = digits_study.images("test", np.arange(40))
    with torch.no_grad():
        logits = digits_study.model(x)
    msp = -torch.softmax(logits, 1).max(1).values.numpy()
    energy = -torch.logsumexp(logits, 1).numpy()
    np.testing.assert_allclose(fitted["msp"].score(x), msp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fitted["energy"].score(x), energy, rtol=1e-5, atol=1e-5)


def test_cpl_scorer_is_minus_the_library_lens_cpl(digits_study, fitted):
    """On the test split the scorer gives -CPL exactly as Study.library reports it."""
    res = digits_study.library(0.8, 3)
    x = digits_study.images("test")
    np.testing.assert_allclose(fitted["library.cpl"].score(x), -res.cpl, atol=1e-6)


def test_table_auroc_matches_pytorch_ood_on_the_same_scores(table):
    from pytorch_ood.metrics import AUROC

    s = table.scores[("pgd", 0.3)]
    for name in ("energy", "mahalanobis"):
        clean, adv = torch.as_tensor(s["clean"][name]), torch.as_tensor(s["perturbed"][name])
        labels = torch.cat([torch.zeros(len(clean)), -torch.ones(len(adv))]).long()
        theirs = AUROC().update(torch.cat([clean, adv]), labels).compute()["AUROC"]
        assert table.get(name, "pgd", 0.3) == pytest.approx(float(theirs), abs=1e-6)


def test_a_vanishing_noise_control_scores_exactly_chance(digits_study):
    """Pairing check: at a noise amplitude far below any detector's resolution every pair
    scores (almost) the same clean and noisy, so AUROC is 0.5 for every detector."""
    t = digits_study.detect(["uniform"], eps=[1e-6], n=60, options=OPTIONS)
    for d in t.detectors:
        assert abs(t.get(d, "uniform", 1e-6) - 0.5) < 0.05, d


def test_table_pairs_successful_attacks_and_every_clean_correct_control(table, digits_study):
    dets = table.detectors
    assert len(table.rows) == len(dets) * 2
    pgd = digits_study.attack("pgd", 0.3, n=120, nb_iter=10)  # the cached run it used
    s = table.scores[("pgd", 0.3)]
    assert len(s["index"]) == int(pgd.success.sum()) > 20
    assert (s["pred"] == s["y"]).all() and (s["pred_adv"] != s["y"]).all()
    u = table.scores[("uniform", 0.3)]
    assert len(u["index"]) == int((pgd.pred == pgd.y).sum())
    row = next(r for r in table.rows if r["attack"] == "pgd")
    assert row["success_rate"] == pytest.approx(pgd.success_rate)
    # the library paper's claim on this small model: PGD is seen by CPL above chance
    assert table.get("library.cpl", "pgd", 0.3) > 0.6
    fpr, tpr = table.roc("library.cpl", "pgd", 0.3)
    assert fpr[0] == 0 and tpr[-1] == 1
    assert "library.cpl" in table.to_markdown()


def test_bad_input_is_refused_with_the_fix(digits_study):
    with pytest.raises(ValueError, match="unknown attack 'deepfool'.*pgd"):
        digits_study.detect(["deepfool"], eps=[0.1])
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\]"):
        digits_study.detect(["pgd"], eps=[1.5])
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\]"):
        digits_study.detect(["pgd"], eps=[0])
    with pytest.raises(ValueError, match="unknown detector 'lid'.*library.cpl"):
        digits_study.detect(["pgd"], eps=[0.1], detectors=["lid"])
    with pytest.raises(ValueError, match="held-out"):
        digits_study.detect(["pgd"], eps=[0.1], split="train")
    with pytest.raises(ValueError, match="n must be"):
        digits_study.detect(["pgd"], eps=[0.1], n=1)
    with pytest.raises(NotFittedError, match=r"fit\(study\)"):
        CPLScorer().score(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="shape"):
        MSPScorer().fit(digits_study).score(np.zeros((2, 3)))


def test_detect_is_cancellable_and_reports_progress(digits_study):
    from introspect.pipeline import StageCancelled

    calls = []

    def cb(done, total, info):
        calls.append((done, total, info))
        return done >= 2

    with pytest.raises(StageCancelled):
        digits_study.detect(["fgsm"], eps=[0.1], n=20, detectors=["baseline"], callback=cb)
    assert [c[0] for c in calls] == [1, 2] and calls[0][1] == 6 + 2
    assert EnergyScorer().name == "energy"


def test_carlini_wagner_flips_most_inputs_with_small_l2(digits_study):
    from introspect.attacks import carlini_wagner_l2

    x = digits_study.images("test", np.arange(12))
    y = torch.as_tensor(digits_study.labels("test")[:12])
    adv = carlini_wagner_l2(digits_study.model, x, y, max_iterations=20, binary_search_steps=2)
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        right = digits_study.model(x).argmax(1) == y
        flipped = digits_study.model(adv).argmax(1) != y
    assert (flipped & right).sum() >= 0.5 * right.sum()
    l2 = (adv - x).flatten(1).norm(dim=1)[flipped & right]
    assert float(l2.median()) < 0.5 * float(x.flatten(1).norm(dim=1).median())
    with pytest.raises(ValueError, match="max_iterations"):
        carlini_wagner_l2(digits_study.model, x, y, max_iterations=0)
