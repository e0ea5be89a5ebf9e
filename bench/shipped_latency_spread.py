"""Is the latency predictor's error on the shipped networks larger than this machine's run-to-run spread?

``python -m search latency-check --deployment --shipped`` times the shipped searched networks in the
same rounds as ~30 random networks per space and reports how many the calibrated lookup-table
predictor puts within +-10 % of measured (1 of 4 last time). But the same shipped network measured
16.1 ms in one such run and 23.0 ms in another three minutes later: on a shared 2-core machine the
run-to-run spread may be as wide as the band. This bench measures that spread for each shipped
network on its own, and sets the predictor's error beside it.

How:

- the shipped searched networks are rebuilt exactly as latency-check rebuilds them
  (``search.report.shipped_latency.shipped_networks``: each segmentation card's typed architecture,
  a segqc-hw seg card with its QC partner as one network, at the card's own input shape, seeded
  weights), exported to ONNX once each (``search.latency.onnx_bytes.export_onnx_bytes``), and get one
  onnxruntime session each with the app's settings (``search.latency.measure.deployed_session``:
  ``--threads`` intra-op threads, no thread spinning) and latency-check's seeded random input;
- they are timed alone, no random networks: ``--rounds`` rounds; in each round every network, in an
  order shuffled per round (seeded by ``--seed``), gets ``--warmup`` discarded runs then ``--runs``
  timed runs (``measure.measure_session``, garbage collector paused), and the median of those runs is
  the network's *round median*; ``--pause`` seconds between rounds spread them over time;
- the prediction is what latency-check would predict with the calibration stored on this machine:
  the sum of the network's op instances' lookup-table entries (``check.table_prediction``) through the
  affine calibration of its space stored in the table's ``meta['calibration']``
  (``LatencyTable.predict_network_ms``; ``--calibration``, default this machine's table at
  ``--threads``, ``profiler.default_table_path``). The stored calibration comes from a latency-check
  run, so it was never fitted on these networks.

Per network (:func:`spread_and_error`, the arithmetic, on the round medians ``m_1..m_R``):
``median_ms`` = median of the round medians (the measurement the error is taken against), ``min_ms`` /
``max_ms``, ``rel_spread = (max - min) / median``, ``cv`` = sample standard deviation / mean of the
round medians, ``error = predicted / median - 1`` (signed), ``within_band`` = ``|error| <= 0.10``,
``error_exceeds_spread`` = ``|error| > rel_spread / 2`` (the prediction lies farther from the median
than half the width the network's own round medians covered; for a symmetric spread, outside it), and
``predicted_in_round_range`` = ``min <= predicted <= max`` (some round measured at least as far from
the median as the prediction lies, on its side). An error that does not exceed the spread cannot be
told apart from the machine's noise by this bench.

``--baselines`` also times, in the same rounds, the handcrafted baseline cards (``baseline-*``, float, not streaming)
from their shipped ONNX files, each alone at its card's input: they have no table ops, so no
prediction, only their spread. Off by default: the 3D U-net takes ~1.2 s per run on this machine
(``--warmup 5 --runs 30 --rounds 7``: ~5 minutes for it alone).

    python bench/shipped_latency_spread.py                       # 7 rounds x (5 + 30 runs), 2 threads
    python bench/shipped_latency_spread.py --rounds 15 --pause 20 --out /tmp/spread.json

Writes ``--out`` (default ``docs/bench/shipped_latency_spread.json``) and the markdown beside it (.md),
with the load average (and ``uptime``) at the start, after every round and at the end.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/shipped_latency_spread.py``
    sys.path.insert(0, str(ROOT))

from bench.report import write_report  # noqa: E402

#: latency-check's accuracy band (nn-Meter's): a prediction within +-10 % of measured.
BAND = 0.10
#: Tolerance of the band and spread comparisons (a prediction exactly on the edge counts as inside).
_EPS = 1e-12


# -- the arithmetic ---------------------------------------------------------------------------------
def spread_and_error(round_medians_ms: Sequence[float], predicted_ms: float | None, *,
                     band: float = BAND) -> dict[str, Any]:
    """Spread of one network's round medians, and the prediction's error against their median.

    Args:
        round_medians_ms: (R,) the network's median latency in each round, ms (all positive).
        predicted_ms: The predictor's latency, ms; ``None`` (no prediction) leaves the error fields None.
        band: Half-width of the accuracy band, as a fraction (0.10: +-10 %).

    Returns:
        ``{"n_rounds", "median_ms", "min_ms", "max_ms", "rel_spread", "cv", "predicted_ms", "error",
        "within_band", "error_exceeds_spread", "predicted_in_round_range"}``: ``rel_spread`` =
        (max - min) / median; ``cv`` = sample std / mean (None for one round); ``error`` = predicted /
        median - 1; ``within_band`` = |error| <= band; ``error_exceeds_spread`` = |error| > rel_spread / 2;
        ``predicted_in_round_range`` = min <= predicted <= max.

    Raises:
        ValueError: no round, or a round median that is not positive and finite.
    """
    m = np.asarray(round_medians_ms, dtype=np.float64)
    if m.ndim != 1 or m.size == 0:
        raise ValueError(f"need a non-empty (R,) list of round medians, got shape {m.shape}")
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError(f"round medians must be positive and finite, got {m.tolist()}")
    median, lo, hi = float(np.median(m)), float(m.min()), float(m.max())
    rel_spread = (hi - lo) / median
    out: dict[str, Any] = {
        "n_rounds": int(m.size), "median_ms": median, "min_ms": lo, "max_ms": hi, "rel_spread": rel_spread,
        "cv": float(np.std(m, ddof=1) / np.mean(m)) if m.size >= 2 else None,
        "predicted_ms": None, "error": None, "within_band": None, "error_exceeds_spread": None,
        "predicted_in_round_range": None,
    }
    if predicted_ms is None or not math.isfinite(predicted_ms):
        return out
    error = float(predicted_ms) / median - 1.0
    out.update(predicted_ms=float(predicted_ms), error=error, within_band=bool(abs(error) <= band + _EPS),
               error_exceeds_spread=bool(abs(error) > rel_spread / 2 + _EPS),
               predicted_in_round_range=bool(lo - _EPS <= predicted_ms <= hi + _EPS))
    return out


def summarize(rows: Sequence[Mapping[str, Any]], *, band: float = BAND) -> dict[str, Any]:
    """Counts over the networks with a prediction, and the spread over every network timed.

    Args:
        rows: ``spread_and_error`` results (other keys ignored).

    Returns:
        ``{"n", "n_predicted", "n_within_band", "n_error_exceeds_spread", "n_predicted_in_round_range",
        "median_rel_spread", "max_rel_spread", "band"}`` (spreads None when ``rows`` is empty).
    """
    predicted = [r for r in rows if r.get("error") is not None]
    spreads = [float(r["rel_spread"]) for r in rows]
    return {
        "band": band,
        "n": len(rows),
        "n_predicted": len(predicted),
        "n_within_band": sum(bool(r["within_band"]) for r in predicted),
        "n_error_exceeds_spread": sum(bool(r["error_exceeds_spread"]) for r in predicted),
        "n_predicted_in_round_range": sum(bool(r["predicted_in_round_range"]) for r in predicted),
        "median_rel_spread": float(np.median(spreads)) if spreads else None,
        "max_rel_spread": max(spreads) if spreads else None,
    }


# -- the machine ------------------------------------------------------------------------------------
def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- what is timed ----------------------------------------------------------------------------------
def _calibration_used(meta: Mapping[str, Any], space: str) -> str:
    """Which stored calibration ``LatencyTable.calibration(space)`` falls back to: the space, global or identity."""
    from search.latency.calibration import GLOBAL, calibrations_from_meta

    stored = calibrations_from_meta(meta)
    return space if space in stored else GLOBAL if GLOBAL in stored else "identity"


def predict(table, net) -> dict[str, Any]:
    """What latency-check predicts for a ``SampledNetwork`` with the table's stored calibration.

    Returns:
        ``{"n_ops", "sum_ms", "predicted_ms", "calibration", "calibration_space", "missing"}``;
        ``predicted_ms`` None (and ``missing`` the keys' canonical names) when the table lacks some of
        its op signatures.
    """
    from search.latency.check import table_prediction

    missing = [k.canonical() for k in table.missing(net.keys)]
    if missing:
        return {"n_ops": len(net.keys), "sum_ms": None, "predicted_ms": None, "calibration": None,
                "calibration_space": None, "missing": missing}
    sum_ms, n_ops = table_prediction(table, net.keys)
    return {"n_ops": n_ops, "sum_ms": sum_ms,
            "predicted_ms": float(table.predict_network_ms(sum_ms, n_ops, net.space)),
            "calibration": table.calibration(net.space).to_dict(),
            "calibration_space": _calibration_used(table.meta, net.space), "missing": []}


def baseline_cards(cards) -> tuple[list, dict[str, str]]:
    """The handcrafted baseline cards (method ``baseline-*``, as ``bench/model_latency.py`` tells them; no
    search space, no genotype) ``--baselines`` times: float, not streaming, with an ONNX file that checks
    against the card; and id -> why each other baseline is not. Handcrafted QC partners of searched
    networks (``cine-qc``) are no baselines and are not timed."""
    from app.cards import ModelCardError
    from search.report.shipped_latency import space_of

    chosen, left_out = [], {}
    for card in cards:
        arch = card.raw.get("architecture") or {}
        if (not card.method.startswith("baseline") or space_of(card) is not None
                or arch.get("genotype") is not None or card.raw.get("genotype") is not None):
            continue
        if card.raw.get("streaming") or card.raw.get("quantization"):
            left_out[card.id] = "streaming or INT8: not timed"
            continue
        try:
            card.check_file()
        except ModelCardError as exc:
            left_out[card.id] = f"its ONNX file does not check ({exc})"
            continue
        chosen.append(card)
    return chosen, left_out


def not_timed(skipped: Sequence[Mapping[str, str]], baselines_timed: Sequence[str],
              baselines_left_out: Mapping[str, str]) -> list[dict[str, str]]:
    """``shipped_networks``' skipped cards less the baselines timed anyway, with ``--baselines``' own reason
    added where it left one out."""
    out = []
    for entry in skipped:
        if entry["id"] in baselines_timed:
            continue
        note = baselines_left_out.get(entry["id"])
        out.append({"id": entry["id"], "reason": entry["reason"] + (f"; --baselines: {note}" if note else "")})
    return out


def time_rounds(names: Sequence[str], run_one: Callable[[str], float], *, rounds: int, seed: int,
                pause_s: float = 0.0, on_round: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
    """``rounds`` rounds, each running every name once in a seeded shuffled order.

    Args:
        names: What is timed.
        run_one: name -> that network's median ms over one round's timed runs (its warm-up included).
        rounds: Number of rounds.
        seed: Seeds the per-round orders (``np.random.default_rng(seed).permutation`` each round).
        pause_s: Sleep between rounds.
        on_round: Called after each round with ``(round index, that round's record)``.

    Returns:
        ``{"round_medians_ms": {name: [R floats]}, "rounds": [{"order", "started", "medians_ms", "load_avg_after"}]}``
        (``medians_ms``: name -> that round's median).
    """
    if rounds < 1:
        raise ValueError(f"need at least one round, got {rounds}")
    from app.engine.benchmark import load_average

    rng = np.random.default_rng(seed)
    medians: dict[str, list[float]] = {n: [] for n in names}
    records = []
    for r in range(rounds):
        if r and pause_s > 0:
            time.sleep(pause_s)
        order = [names[i] for i in rng.permutation(len(names))]
        record: dict[str, Any] = {"order": order, "started": now(), "medians_ms": {}}
        for name in order:
            record["medians_ms"][name] = float(run_one(name))
            medians[name].append(record["medians_ms"][name])
        record["load_avg_after"] = load_average()
        records.append(record)
        if on_round is not None:
            on_round(r, record)
    return {"round_medians_ms": medians, "rounds": records}


def run(models_dir: Path, calibration: Path | None, *, rounds: int, warmup: int, runs: int, threads: int,
        seed: int, pause_s: float = 0.0, baselines: bool = False, log: Callable[[str], None] = print) -> dict:
    """Rebuild, export, time alone and predict every shipped searched network; the JSON document."""
    import onnxruntime as ort
    import torch

    from app.cards import discover
    from app.engine.benchmark import load_average, uptime_text
    from search.latency.lut import LatencyTable, hardware_fingerprint
    from search.latency.measure import deployed_session, make_feeds, measure_session, runtime_name
    from search.latency.onnx_bytes import count_onnx_nodes, export_onnx_bytes
    from search.latency.profiler import default_table_path
    from search.methods.spaces import register_all
    from search.report.shipped_latency import shipped_networks

    if rounds < 1 or runs < 1 or warmup < 0 or threads < 1:
        raise SystemExit(f"need --rounds >= 1, --runs >= 1, --warmup >= 0, --threads >= 1; got {rounds}, {runs}, "
                         f"{warmup}, {threads}")
    started, uptime_start, load_start = now(), uptime_text(), load_average()
    torch_threads = 1
    torch.set_num_threads(torch_threads)  # as latency-check: building and exporting only
    spaces = list(register_all())
    cal_path = Path(calibration) if calibration else default_table_path(threads)
    if not cal_path.is_file():
        raise SystemExit(f"--calibration: {cal_path} not found (a latency table with a stored calibration, as "
                         "`python -m search latency-check` writes it)")
    table = LatencyTable.load(cal_path)
    if not (table.meta.get("calibration") or {}).get("by_space"):
        log(f"warning: {cal_path} stores no calibration: predictions are the plain sums of entries")
    if not models_dir.is_dir():
        raise SystemExit(f"--models-dir: {models_dir} is not a folder of model cards")
    cards = discover(models_dir)
    nets, skipped = shipped_networks(spaces, cards, seed=seed)
    if not nets:
        raise SystemExit(f"{models_dir}: no shipped searched network to time (skipped: "
                         f"{', '.join(s['id'] for s in skipped) or 'none'})")
    base_cards, base_left_out = baseline_cards(cards) if baselines else ([], {})

    entries: dict[str, dict[str, Any]] = {}
    sessions, feeds = {}, {}
    for net in nets:
        inputs = net.inputs()
        model = export_onnx_bytes(net.module, inputs)
        shape = tuple(int(d) for d in inputs[0].shape)
        name = net.model_id
        sessions[name] = deployed_session(model, threads)
        feeds[name] = make_feeds(sessions[name], shape)  # latency-check's input: seeded random, seed 0
        entries[name] = {"kind": "searched", "space": net.space,
                         "cards": list(net.genotype) if isinstance(net.genotype, dict) else [name],
                         "input_shape": list(shape), "onnx_nodes": count_onnx_nodes(model), **predict(table, net)}
        pred = entries[name]["predicted_ms"]
        log(f"{name} [{net.space}, {'x'.join(map(str, shape[1:]))}]: {entries[name]['n_ops']} table ops, predicted "
            + ("- (ops missing from the table)" if pred is None else f"{pred:.2f} ms"))
    for card in base_cards:
        sessions[card.id] = deployed_session(str(card.onnx_path), threads)
        feeds[card.id] = make_feeds(sessions[card.id])  # the file's static input shapes
        entries[card.id] = {"kind": "baseline", "space": None, "cards": [card.id], "method": card.method,
                            "input_shape": list(card.input_shape), "onnx_nodes": None, "n_ops": None, "sum_ms": None,
                            "predicted_ms": None, "calibration": None, "calibration_space": None, "missing": []}
    names = list(entries)

    def run_one(name: str) -> float:
        return measure_session(sessions[name], feeds[name], warmup=warmup, repeats=runs).p50_ms

    def progress(r: int, record: dict) -> None:
        log(f"round {r + 1}/{rounds} (load {record['load_avg_after']}): "
            + ", ".join(f"{n} {record['medians_ms'][n]:.2f}" for n in record["order"]))

    timed = time_rounds(names, run_one, rounds=rounds, seed=seed, pause_s=pause_s, on_round=progress)
    networks = {}
    for name, entry in entries.items():
        figs = spread_and_error(timed["round_medians_ms"][name], entry["predicted_ms"])
        networks[name] = {**entry, **figs, "round_medians_ms": timed["round_medians_ms"][name]}
    searched = [r for r in networks.values() if r["kind"] == "searched"]
    fingerprint = hardware_fingerprint()
    cal_meta = table.meta.get("calibration") or {}
    table_hw = table.meta.get("hardware") or {}
    return {
        "question": "is the calibrated lookup-table predictor's error on the shipped searched networks larger than "
                    "this machine's run-to-run spread of each network, timed alone?",
        "models_dir": _shown(models_dir),
        "calibration": {"path": _shown(cal_path), "table_threads": table.meta.get("threads"),
                        "fitted": cal_meta.get("machine"), "samples_per_space": cal_meta.get("samples_per_space"),
                        "seed": cal_meta.get("seed"), "updated": table.meta.get("updated"),
                        "matches_machine": bool(table_hw.get("cpu") == fingerprint["cpu"]
                                                and table_hw.get("logical_cores") == fingerprint["logical_cores"]
                                                and table.meta.get("threads") == threads
                                                and table.meta.get("runtime_version") == ort.__version__)},
        "settings": {"rounds": rounds, "warmup": warmup, "runs": runs, "ort_threads": threads,
                     "allow_spinning": False, "torch_threads": torch_threads, "seed": seed, "pause_s": pause_s,
                     "baselines": baselines, "band": BAND,
                     "error": "predicted / median of round medians - 1",
                     "rel_spread": "(max - min) / median of round medians",
                     "cv": "sample std / mean of round medians",
                     "error_exceeds_spread": "|error| > rel_spread / 2",
                     "predicted_in_round_range": "min <= predicted <= max of round medians"},
        "networks": networks,
        "summary": summarize(searched),
        "summary_all": summarize(list(networks.values())),
        "skipped": not_timed(skipped, [c.id for c in base_cards], base_left_out),
        "rounds": timed["rounds"],
        "machine": {**fingerprint, "runtime": runtime_name(), "torch": torch.__version__},
        "started": started, "finished": now(), "uptime_start": uptime_start, "uptime_end": uptime_text(),
        "load_avg_start": load_start, "load_avg_end": load_average(),
    }


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (what the committed report names)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT.resolve()))
    except ValueError:
        return str(path)


# -- the report -------------------------------------------------------------------------------------
def _pct(x: float | None, signed: bool = False) -> str:
    return "-" if x is None else f"{x * 100:+.1f}%" if signed else f"{x * 100:.1f}%"


def _yes(x: bool | None) -> str:
    return "-" if x is None else "yes" if x else "no"


def markdown(result: dict) -> str:
    s, m, cal, summ = result["settings"], result["machine"], result["calibration"], result["summary"]
    pause = f"; {s['pause_s']:g} s pause between rounds" if s["pause_s"] else ""
    lines = [
        "# Shipped networks: predictor error vs run-to-run spread", "",
        f"Question: {result['question']}", "",
        f"Run {result['started']} to {result['finished']} on {m['cpu']} ({m['logical_cores']} logical cores), "
        f"{m['runtime']}, **{s['ort_threads']} intra-op threads** (no spinning, the app's session settings); torch "
        f"{m['torch']} at {s['torch_threads']} thread to build and export. Load average {result['load_avg_start']} at "
        f"the start, {result['load_avg_end']} at the end (`uptime`: {result['uptime_start'] or '-'}).", "",
        f"Networks rebuilt from the cards in `{result['models_dir']}` as `latency-check --shipped` rebuilds them, "
        f"exported once each, one session each, timed **alone** (no random networks): {s['rounds']} rounds; each "
        f"round every network, in a seeded shuffled order (seed {s['seed']}), gets {s['warmup']} warm-up and "
        f"{s['runs']} timed runs, and their median is its round median{pause}."
        f" Prediction: the sum of the network's table entries through the calibration stored in `{cal['path']}` "
        f"(updated {cal['updated']}, fitted on {cal['samples_per_space']} random networks per space; "
        f"{'this machine, runtime and thread count' if cal['matches_machine'] else '**another machine, runtime or thread count than this run**'}).",
        "",
        f"error = predicted / median - 1; spread = (max - min) / median of the round medians; CV = std / mean of "
        f"the round medians; *error > spread/2*: |error| > spread / 2; *in range*: predicted between the lowest "
        f"and highest round median. Within +-{s['band'] * 100:.0f}%: |error| <= {s['band']:.2f}.", "",
        "| network | space | input | table ops | median ms | min - max ms | spread | CV | predicted ms | error "
        f"| within +-{s['band'] * 100:.0f}% | error > spread/2 | in range |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["networks"].items():
        label = " + ".join(r["cards"]) if r["kind"] == "searched" else f"{name} (baseline)"
        pred = "-" if r["predicted_ms"] is None else f"{r['predicted_ms']:.2f}"
        if r["kind"] == "searched" and r["predicted_ms"] is None:
            pred = f"- ({len(r['missing'])} ops not in the table)"
        lines.append(
            f"| {label} | {r['space'] or '-'} | {'x'.join(map(str, r['input_shape'][1:]))} | {r['n_ops'] or '-'} "
            f"| {r['median_ms']:.2f} | {r['min_ms']:.2f} - {r['max_ms']:.2f} | {_pct(r['rel_spread'])} "
            f"| {_pct(r['cv'])} | {pred} | {_pct(r['error'], True)} | {_yes(r['within_band'])} "
            f"| {_yes(r['error_exceeds_spread'])} | {_yes(r['predicted_in_round_range'])} |")
    lines += ["", f"Searched networks: {summ['n_within_band']} of {summ['n_predicted']} within +-"
                  f"{summ['band'] * 100:.0f}%; the error exceeds half the network's own spread for "
                  f"{summ['n_error_exceeds_spread']} of {summ['n_predicted']}; the prediction lies inside the range "
                  f"of round medians for {summ['n_predicted_in_round_range']} of {summ['n_predicted']}. Spread of "
                  f"the round medians: median {_pct(summ['median_rel_spread'])}, largest "
                  f"{_pct(summ['max_rel_spread'])}.", ""]
    names = list(result["networks"])
    lines += ["Round medians (ms), with the load average after each round:", "",
              "| round | load average after | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for i, rec in enumerate(result["rounds"]):
        cells = [f"{result['networks'][n]['round_medians_ms'][i]:.2f}" for n in names]
        lines.append(f"| {i + 1} | {rec['load_avg_after']} | " + " | ".join(cells) + " |")
    if result["skipped"]:
        lines += ["", "Not timed:", ""] + [f"- {s_['id']}: {s_['reason']}" for s_ in result["skipped"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", type=Path, default=None, help="model cards (default: the app's models/)")
    ap.add_argument("--calibration", type=Path, default=None,
                    help="latency table whose meta holds the stored calibration (default: this machine's at "
                         "--threads, models/latency/<cpu>-<n>cpu-ort<version>-t<threads>.json)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds; each gives one median per network (default 7)")
    ap.add_argument("--warmup", type=int, default=5, help="discarded runs per network per round (default 5, "
                                                          "latency-check's)")
    ap.add_argument("--runs", type=int, default=30, help="timed runs per network per round (default 30, "
                                                         "latency-check's least repeats)")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2, the app's here)")
    ap.add_argument("--seed", type=int, default=0, help="seeds the weights (as latency-check) and round orders")
    ap.add_argument("--pause", type=float, default=0.0, help="seconds to sleep between rounds (default 0)")
    ap.add_argument("--baselines", action="store_true",
                    help="also time the handcrafted baseline cards (float, not streaming) from their ONNX files; "
                         "no prediction, only their spread (the 3D U-net takes ~1 s per run)")
    ap.add_argument("--out", type=Path, default=None, help="default: docs/bench/shipped_latency_spread.json (+ .md)")
    args = ap.parse_args(argv)
    from app.cards import default_models_dir

    result = run(args.models_dir or default_models_dir(), args.calibration, rounds=args.rounds, warmup=args.warmup,
                 runs=args.runs, threads=args.threads, seed=args.seed, pause_s=args.pause, baselines=args.baselines)
    write_report(args.out or ROOT / "docs" / "bench" / "shipped_latency_spread.json", result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
