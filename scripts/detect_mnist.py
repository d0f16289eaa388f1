"""The cross-lens detection benchmark on real MNIST with the library paper's CNN (issue 11).

    PYTHONPATH=src python scripts/detect_mnist.py --data-root ../shared/data --n 500

Fits every detector on ``--n-per-class`` training images per class, attacks ``--n``
held-out test images (PGD, FGSM, targeted I-FGSM at three eps, L2 Carlini-Wagner) and
the two noise controls, and writes the AUROC / AUPR / TPR@5%FPR tables (markdown) and
the run times (JSON) to ``--out``. One torch thread unless ``--threads`` says otherwise.
Everything is cached in ``--workdir``: an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--workdir", default="introspect-work")
    ap.add_argument("--out", default="detect-mnist")
    ap.add_argument("--n", type=int, default=500, help="held-out test inputs attacked")
    ap.add_argument("--n-per-class", type=int, default=500, help="images per class per split")
    ap.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    ap.add_argument("--nb-iter", type=int, default=40)
    ap.add_argument("--eps-iter", type=float, default=0.01)
    ap.add_argument("--cw-steps", type=int, default=100)
    ap.add_argument("--cw-search-steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from introspect import Study

    t0 = time.perf_counter()
    study = Study.from_recipe(
        "mnist_cnn", workdir=args.workdir, device=args.device, data_root=args.data_root,
        n_per_class=args.n_per_class, progress=False,
    )  # fmt: skip
    t_load = time.perf_counter() - t0

    def progress(done, total, info):
        print(f"[{time.perf_counter() - t0:7.1f} s] {done}/{total} {info}", flush=True)

    table = study.detect(
        ["pgd", "fgsm", "ifgsm_targeted", "cw", "uniform", "gaussian"], eps=args.eps, n=args.n,
        nb_iter=args.nb_iter, eps_iter=args.eps_iter, cw_steps=args.cw_steps,
        cw_search_steps=args.cw_search_steps,
        options=dict(selfintro=dict(layers=["CN2", "FC1", "FC2"])), callback=progress,
    )  # fmt: skip
    total = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# Detection on MNIST ({study!r})", ""]
    for metric in ("auroc", "aupr", "tpr_at_5fpr"):
        md += [f"## {metric}", "", table.to_markdown(metric), ""]
    (out / "table.md").write_text("\n".join(md))
    times = {
        "load_s": t_load,
        "total_s": total,
        "fit_s": table.times["fit"],
        "attack_s": {f"{a} {e}": v for (a, e), v in table.times["attack"].items()},
        "score_s": {f"{a} {e}": v for (a, e), v in table.times["score"].items()},
        "params": table.params,
    }
    (out / "times.json").write_text(json.dumps(times, indent=1, default=str))
    with open(out / "rows.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table.rows[0]))
        w.writeheader()
        w.writerows(table.rows)
    print("\n".join(md))
    print(json.dumps(times, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
