"""Cold start side by side: held-out items served from their attributes vs popularity baselines.

``python benchmarks/bench_coldstart.py [--logs samples,dense,sparse] [--repeats 3] [--mode mean]
[--share X] [--lr-scale X] [--validation X] [--priors 0,1:2,3] [--speed-runs 5]``

For each log (``data_samples/``, and the dense and sparse real-shaped logs of
``benchmarks/reallike.py`` with their catalogues) it holds out 20% of the trained items entirely,
trains without and with attributes and prints :func:`recommender.evaluate.cold.evaluate_cold`'s
table: HR@10 on cold, warm and tail queries, pin2vec vs most-popular and most-popular-within-the-
same-attribute-value (medians of ``--repeats`` held-out draws, seeds 0..repeats-1), and the
training speed with attributes as a ratio: the median of ``--speed-runs`` alternating pairs of
trainings without and with attributes, on the log's whole training sessions.
Cold rows: the model's validated default (the cold scoring it chose on pseudo-cold items of the
kept sessions, printed per draw with its ratio to the baseline) beside fixed alternatives and
``same:<the baseline's column>`` at weight 1 (the baseline itself, scored by
:func:`recommender.core.attributes.cold_scores`: 1.000x) and 0.1; warm/tail rows: tail
blending at each ``--priors`` entry ``prior[:max engagements blended]`` (1:2 is the index default).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from recommender.core.catalog import CatalogOptions, parse_attribute_specs, read_catalog  # noqa: E402
from recommender.evaluate.cold import ColdEvalConfig, evaluate_cold  # noqa: E402
from recommender.train import TrainConfig  # noqa: E402
from recommender.train.attributes import AttributeConfig, CatalogAttributes  # noqa: E402

SAMPLES = HERE.parent / "data_samples"
ATTRIBUTES = {"samples": "category,brand,tags:multi,price:numeric",
              "dense": "genres:multi,year:numeric",
              "sparse": "category,brand,tags:multi,price:numeric"}


def samples_log():
    """(train, test) sessions of data_samples/ split by session start (last 20% of time)."""
    from pipeline.sessions_job import run as sessionize
    from recommender.core.sessions import read_sessions_table

    out = Path(tempfile.mkdtemp(prefix="coldstart-")) / "sessions"
    sessionize(["--input", str(SAMPLES / "events" / "*"), "--output", str(out)])
    table = read_sessions_table(out)
    items = table.column("items").to_pylist()
    start = table.column("start").cast("int64").to_numpy()
    order = np.argsort(start, kind="stable")
    cut = start.min() + 0.8 * (start.max() - start.min())
    train = [items[i] for i in order if start[i] < cut]
    test = [items[i] for i in order if start[i] >= cut]
    times = [start[i] / 1e6 for i in order if start[i] < cut]
    config = json.loads((SAMPLES / "train_config.json").read_text())
    return train, test, SAMPLES / "catalog.csv", TrainConfig(**config), times


def reallike_log(name: str):
    import reallike
    from refscore import holdout_last, time_split_sessions, time_test_mask

    data = reallike.dense_log() if name == "dense" else reallike.sparse_log()
    folder = reallike.write_log(data, Path(tempfile.mkdtemp(prefix=f"coldstart-{name}-")))
    if name == "dense":  # whole user histories: no session start times
        train, test = holdout_last(reallike.user_sequences(data.events), 5)
        config = TrainConfig(dim=64, window=5, epochs=10, ns_exponent=0.75)
        times = None
    else:
        seqs, starts = reallike.session_sequences(data.events)
        train, test = time_split_sessions(seqs, starts, 0.2)
        times = np.asarray(starts, np.float64)[~time_test_mask(starts, 0.2)]  # train's, in order
        config = TrainConfig(dim=32, window=3, epochs=30, ns_exponent=-0.5, alpha=0.05)
    return train, test, folder / "catalog.csv", config, times


def speed(train_sessions, attrs, train_config, attribute_config, runs: int) -> dict:
    """Words/s without and with attributes, ``runs`` trainings each, alternating in one process
    after a warm-up training (a single pair of 1-6 s trainings moved by +-0.1 on this shared
    machine). The ratio is the median of the per-pair ratios."""
    from dataclasses import replace

    from recommender.train import train

    config = replace(train_config, progress=False)
    train(train_sessions, config)  # warm-up: first-use costs land in no timed run
    plain, with_attrs = [], []
    for _ in range(runs):
        plain.append(train(train_sessions, config).manifest["words_per_second"])
        with_attrs.append(train(train_sessions, config, attributes=(attrs, attribute_config))
                          .manifest["words_per_second"])
    ratios = [a / p for p, a in zip(plain, with_attrs)]
    return {"runs": runs, "words_per_second": round(float(np.median(plain))),
            "with_attributes": round(float(np.median(with_attrs))),
            "ratio": round(float(np.median(ratios)), 3),
            "per_run": [round(r, 2) for r in ratios]}


def _choice(choice: dict | None) -> str:
    """``"same:category 0.3 recent 0.03"``: a cold choice as its validation label."""
    choice = choice or {}
    return (f"{choice.get('scoring')} {choice.get('popularity', 0):g}"
            + (f" recent {choice['recency']:g}" if choice.get("recency") else ""))


def run(name: str, repeats: int, attribute_config: AttributeConfig, priors,
        speed_runs: int = 0) -> dict:
    train, test, catalog_path, train_config, times = (samples_log() if name == "samples"
                                                      else reallike_log(name))
    specs = parse_attribute_specs(ATTRIBUTES[name])
    catalog = read_catalog(catalog_path, CatalogOptions(attributes=specs))
    attrs = CatalogAttributes.from_catalog(catalog, specs)
    reports = [evaluate_cold(train, test, attrs, train_config, attribute_config,
                             ColdEvalConfig(seed=seed, priors=priors), train_times=times)
               for seed in range(repeats)]
    draws = [rep["cold_vs_best_attribute"]["ratio"]["default"] for rep in reports]
    # Rows by (slice, method): a draw whose choice reads recent engagements has one row more
    # (the baseline ranked by them); such rows are medians of the draws that have them.
    rows: dict = {}
    for rep in reports:
        for row in rep["results"]:
            rows.setdefault((row["slice"], row["method"]), []).append(row)
    merged = reports[0]
    merged["cold_ratio_draws"] = draws
    order = {"cold": 0, "warm": 1, "tail": 2}
    merged["results"] = sorted(
        ({**same[0], "hr": float(np.median([x["hr"] for x in same])),
          "method": same[0]["method"] + (f" [{len(same)} of {repeats} draws]"
                                         if len(same) < repeats else "")}
         for same in rows.values()), key=lambda row: order.get(row["slice"], 3))
    merged["speed"]["ratio"] = float(np.median([rep["speed"]["ratio"] for rep in reports]))
    ratio_keys = dict.fromkeys(b for rep in reports for b in rep["cold_vs_best_attribute"]["ratio"])
    merged["cold_vs_best_attribute"]["ratio"] = {
        b: round(float(np.median([rep["cold_vs_best_attribute"]["ratio"][b] or 0
                                  for rep in reports
                                  if b in rep["cold_vs_best_attribute"]["ratio"]])), 3)
        for b in ratio_keys}
    merged["cold_choices"] = [_choice(rep["cold_choice"]) for rep in reports]
    if speed_runs:  # the speed of the table's row, measured alternately (see speed)
        merged["speed"] = speed(train, attrs, train_config, attribute_config, speed_runs)
    return merged


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logs", default="samples,dense,sparse")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mode", default="mean", choices=["mean", "each"])
    p.add_argument("--share", type=float, default=AttributeConfig().share)
    p.add_argument("--lr-scale", type=float, default=AttributeConfig().lr_scale)
    p.add_argument("--validation", type=float, default=AttributeConfig().validation,
                   help="share of items kept out of the replay to choose the cold scoring")
    p.add_argument("--update-context", action="store_true")
    p.add_argument("--speed-runs", type=int, default=5,
                   help="training speed with attributes: this many alternating trainings without "
                        "and with them on all trained sessions, median ratio (5; 0 = the "
                        "evaluation's single pair per draw)")
    p.add_argument("--priors", default="0,1:2,3",
                   help="tail blending compared: prior[:max engagements blended] (0,1:2,3)")
    args = p.parse_args(argv)
    attribute_config = AttributeConfig(mode=args.mode, share=args.share,
                                       update_context=args.update_context,
                                       lr_scale=args.lr_scale, validation=args.validation)
    from recommender.evaluate.cold import format_table

    priors = tuple((float(x.split(":")[0]), int(x.split(":")[1]) if ":" in x else 0)
                   for x in args.priors.split(","))
    print(f"attributes: {attribute_config}, blending priors {priors}, medians of {args.repeats}")
    for name in args.logs.split(","):
        report = run(name, args.repeats, attribute_config, priors, args.speed_runs)
        print(f"\n== {name}: {report['counts']}")
        print(format_table(report))
        if args.speed_runs:
            s = report["speed"]
            print(f"training speed: {s['words_per_second']:,} words/s without attributes, "
                  f"{s['with_attributes']:,} with; ratio {s['ratio']}x, median of {s['runs']} "
                  f"alternating pairs {s['per_run']}")
        print(f"cold scoring chosen by validation on pseudo-cold items, per draw: "
              f"{report['cold_choices']}; default / best popular-same, per draw: "
              f"{report['cold_ratio_draws']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
