"""Does ``python -m search`` regenerate the shipped models? Cards of two models folders, side by side.

The README promises that ``python -m search`` regenerates every shipped model. The shipped cards were
exported stage by stage over many sessions (some from a method's later re-run, some from a seed the chain
names in ``search.chain.all_cli.SHIPPED_SEEDS``); a whole uninterrupted run of the chain on a fresh
checkout says whether they still come out of it. This bench compares the cards of the shipped folder
(``--shipped``, default ``models/``) with those of the regenerated folder (``--regenerated``), id by id:

- ``same_onnx``: the ONNX files are byte-identical (the cards' ``onnx_sha256``): same architecture,
  same weights, same export;
- ``same_weights``: the ONNX files' initializers are equal, name for name and bit for bit (the bytes can differ
  where the weights do not: names and attributes the exporter writes);
- ``same_architecture``: the cards' ``architecture`` records are equal (kind, arguments, genotype, the
  searched spec), whatever the weights;
- the card metrics beside each other: segmentation Dice (mean over classes, as the card states it; the
  newest-frame Dice of clip models where the card has it), QC MAE and Pearson r, latency p50 (each folder's
  own figure: the chain re-times its folder at the end, the shipped folder was re-timed on another
  occasion, so latency is compared only within one folder's rows);
- ids present in one folder only.

With ``--stages`` (the chain's ``<work>/stages.json``) the stage times of the run come into the report,
with their sum against the 2-hour target of issue 16 (item 7).

    python bench/regen_check.py --regenerated /path/to/clone/models \\
        --stages /path/to/clone/runs/all/default/stages.json --out docs/bench/whole_chain/regen_check.json

Writes ``--out`` (JSON) and the markdown beside it (.md). Reads cards as JSON only (no ONNX session):
the regenerated folder's own ``python -m search`` summary has verified each card against its file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping

TARGET_S = 2 * 3600.0  # issue 16, item 7: the default preset within 2 hours on this 2-core machine


def card_figures(card: Mapping[str, Any]) -> dict[str, Any]:
    """The comparable figures of one card (None where the card has no such figure)."""
    metrics = card.get("metrics") or {}
    dice = metrics.get("dice")
    newest = metrics.get("dice_newest_frame")
    latency = metrics.get("latency_ms") or {}
    return {
        "role": card.get("role"),
        "method": card.get("method"),
        "dice": dice.get("mean") if isinstance(dice, Mapping) else dice,
        "dice_newest_frame": newest.get("mean") if isinstance(newest, Mapping) else newest,
        "qc_mae": metrics.get("qc_mae"),
        "qc_pearson": metrics.get("qc_pearson"),
        "latency_p50_ms": latency.get("p50") if isinstance(latency, Mapping) else None,
        "onnx_sha256": card.get("onnx_sha256"),
        "architecture": card.get("architecture"),
        "seed": (card.get("data") or {}).get("seed"),
    }


def read_cards(folder: Path, since: str | None = None) -> dict[str, dict[str, Any]]:
    """``{id: card}`` for every ``*.json`` card directly in ``folder`` (latency tables and others skipped); with
    ``since`` (ISO 8601, UTC) only the cards created at or after it (a run into a checkout's own ``models/`` leaves
    the cards of the stages it did not reach as they were)."""
    from datetime import datetime

    start = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
    cards = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            card = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"{path}: not a readable model card ({exc})") from exc
        if not (isinstance(card, dict) and "id" in card and "onnx_sha256" in card):
            continue
        if start is not None and datetime.fromisoformat(str(card.get("created", "1970-01-01T00:00:00+00:00"))
                                                        .replace("Z", "+00:00")) < start:
            continue
        cards[card["id"]] = card
    return cards


def same_weights(a: Path, b: Path) -> bool | None:
    """Whether two ONNX files hold the same initializers (names, shapes, values); None when one is missing."""
    if not (a.is_file() and b.is_file()):
        return None
    import numpy as np
    import onnx
    from onnx import numpy_helper

    def weights(path):
        return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}

    wa, wb = weights(a), weights(b)
    return set(wa) == set(wb) and all(wa[k].shape == wb[k].shape and np.array_equal(wa[k], wb[k]) for k in wa)


def _delta(a, b):
    return None if a is None or b is None else round(b - a, 4)


def compare(shipped: Mapping[str, Mapping], regenerated: Mapping[str, Mapping],
            folders: tuple[Path, Path] | None = None) -> dict[str, Any]:
    """Row per id of either folder, and the counts; with ``folders`` (shipped, regenerated) also whether the ONNX
    files of an id hold the same weights."""
    rows = []
    for cid in sorted(set(shipped) | set(regenerated)):
        a = card_figures(shipped[cid]) if cid in shipped else None
        b = card_figures(regenerated[cid]) if cid in regenerated else None
        row: dict[str, Any] = {"id": cid, "in_shipped": a is not None, "in_regenerated": b is not None}
        if a is not None and b is not None:
            row.update(same_onnx=a["onnx_sha256"] == b["onnx_sha256"],
                       same_architecture=a["architecture"] == b["architecture"])
            if folders is not None:
                row["same_weights"] = row["same_onnx"] or same_weights(*(Path(f) / f"{cid}.onnx" for f in folders))
            for key in ("dice", "dice_newest_frame", "qc_mae", "qc_pearson", "latency_p50_ms"):
                row[key] = {"shipped": a[key], "regenerated": b[key], "delta": _delta(a[key], b[key])}
        src = a or b
        row.update(role=src["role"], method=src["method"])
        rows.append(row)
    both = [r for r in rows if r["in_shipped"] and r["in_regenerated"]]
    dice_deltas = [abs(r["dice"]["delta"]) for r in both if r["dice"]["delta"] is not None]
    return {
        "rows": rows,
        "counts": {
            "shipped": len(shipped), "regenerated": len(regenerated), "in_both": len(both),
            "same_onnx": sum(r["same_onnx"] for r in both),
            "same_architecture": sum(r["same_architecture"] for r in both),
            "same_weights": sum(bool(r.get("same_weights")) for r in both) if folders is not None else None,
            "only_shipped": [r["id"] for r in rows if not r["in_regenerated"]],
            "only_regenerated": [r["id"] for r in rows if not r["in_shipped"]],
            "max_abs_dice_delta": max(dice_deltas) if dice_deltas else None,
        },
    }


def stage_times(stages: Mapping[str, Any], every_stage: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Seconds per stage of a chain's ``stages.json`` and their sum against the 2-hour target.

    The target is judged only when every stage of ``every_stage`` (default: the default chain's,
    ``search.chain.all_cli.STAGES`` less the retired ``OPTIONAL`` ones) is done: ``within_target`` is None for a
    partial run, except that a partial sum already over the target is a miss.
    """
    if every_stage is None:
        from search.chain.all_cli import OPTIONAL, STAGES

        every_stage = tuple(s for s in STAGES if s not in OPTIONAL)
    rows = [{"stage": name, "status": rec.get("status"), "seconds": rec.get("seconds")}
            for name, rec in stages.items() if isinstance(rec, Mapping)]
    total = sum(r["seconds"] or 0.0 for r in rows)
    done = {r["stage"] for r in rows if r["status"] == "done"}
    missing = [s for s in every_stage if s not in done]
    within = (total <= TARGET_S if not missing else (False if total > TARGET_S else None))
    return {"rows": rows, "total_s": round(total, 1), "target_s": TARGET_S, "not_run": missing,
            "within_target": within}


def _fmt(value, digits=3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _pair(row: Mapping[str, Any], key: str, digits: int = 3) -> str:
    return f"{_fmt(row[key]['shipped'], digits)} / {_fmt(row[key]['regenerated'], digits)}"


def markdown(result: Mapping[str, Any]) -> str:
    c = result["counts"]
    out = [f"# Regenerated models against the shipped ones ({result['when']})", "",
           f"Shipped: `{result['shipped_dir']}`; regenerated: `{result['regenerated_dir']}`"
           + (f" (its cards created since {result['since']}, and those ids of the shipped folder)" if result.get("since")
              else "") + ". "
           f"{c['in_both']} ids in both; byte-identical ONNX: {c['same_onnx']} of {c['in_both']}; same weights: "
           f"{_fmt(c.get('same_weights'))} of {c['in_both']}; same architecture: "
           f"{c['same_architecture']} of {c['in_both']}; largest |Dice change|: {_fmt(c['max_abs_dice_delta'])}.", ""]
    if c["only_shipped"]:
        out += [f"Shipped only (the chain does not make them): {', '.join(c['only_shipped'])}.", ""]
    if c["only_regenerated"]:
        out += [f"Regenerated only: {', '.join(c['only_regenerated'])}.", ""]
    out += ["| id | role | same ONNX | same weights | same architecture | Dice shipped / regenerated | QC MAE shipped / regenerated "
            "| QC r shipped / regenerated | p50 ms shipped / regenerated (each folder's own timing) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if not (r["in_shipped"] and r["in_regenerated"]):
            continue
        dice = _pair(r, "dice_newest_frame") + " (newest frame)" if r["dice_newest_frame"]["shipped"] is not None \
            else _pair(r, "dice")
        out.append(f"| {r['id']} | {r['role']} | {_fmt(r['same_onnx'])} | {_fmt(r.get('same_weights'))} "
                   f"| {_fmt(r['same_architecture'])} | {dice} "
                   f"| {_pair(r, 'qc_mae')} | {_pair(r, 'qc_pearson', 2)} | {_pair(r, 'latency_p50_ms', 1)} |")
    stages = result.get("stages")
    if stages:
        verdict = {True: "met", False: "missed", None: "not judged, a partial run"}[stages["within_target"]]
        out += ["", f"## Stage times ({_fmt(stages['total_s'] / 60, 1)} min in all; target "
                f"{stages['target_s'] / 3600:.0f} h: {verdict})", ""]
        if stages.get("not_run"):
            out += [f"Not run: {', '.join(stages['not_run'])}.", ""]
        out += ["| stage | status | minutes |", "|---|---|---|"]
        out += [f"| {s['stage']} | {s['status']} | {_fmt((s['seconds'] or 0) / 60, 1)} |" for s in stages["rows"]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    from datetime import datetime, timezone

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shipped", type=Path, default=Path("models"), help="the shipped models folder (default models/)")
    ap.add_argument("--regenerated", type=Path, required=True, help="the models folder a `python -m search` run wrote")
    ap.add_argument("--since", default=None, metavar="ISO",
                    help="only the regenerated folder's cards created at or after this UTC time (the run's start): "
                         "for a run into a checkout's models/ that did not reach every stage")
    ap.add_argument("--stages", type=Path, default=None, help="that run's stages.json (its stage times)")
    ap.add_argument("--out", type=Path, default=Path("docs/bench/whole_chain/regen_check.json"))
    args = ap.parse_args(argv)
    for folder in (args.shipped, args.regenerated):
        if not folder.is_dir():
            print(f"{folder}: no such models folder", file=sys.stderr)
            return 2
    regenerated = read_cards(args.regenerated, args.since)
    shipped = read_cards(args.shipped)
    if args.since:  # the stages the run did not reach are not compared
        shipped = {k: v for k, v in shipped.items() if k in regenerated}
    result = compare(shipped, regenerated, (args.shipped, args.regenerated))
    result.update(since=args.since, when=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  shipped_dir=str(args.shipped), regenerated_dir=str(args.regenerated))
    if args.stages is not None:
        try:
            result["stages"] = stage_times(json.loads(args.stages.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            print(f"{args.stages}: not a readable stages.json ({exc})", file=sys.stderr)
            return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    md = args.out.with_suffix(".md")
    md.write_text(markdown(result))
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
