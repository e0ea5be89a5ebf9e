"""``python -m search``'s stage arguments: where each method's run goes (no training here)."""

from __future__ import annotations

import argparse

from search.chain import all_cli


def _stage_argv(monkeypatch, tmp_path, **kw) -> dict[str, list[str]]:
    calls = {}

    def fake_run(module, argv, models_dir):
        task = argv[argv.index("--task") + 1] if "--task" in argv else None  # segqc-hw runs twice: contrast, bmode
        calls[module.__name__ if task is None else f"{module.__name__} --task {task}"] = argv
        return 0

    monkeypatch.setattr(all_cli, "_run_module", fake_run)
    parser = argparse.ArgumentParser()
    all_cli.configure(parser)
    argv = ["--models", str(tmp_path / "models"), "--work", str(tmp_path / "work"), "--skip", "profile", "baselines"]
    args = parser.parse_args(argv + kw.get("extra", []))
    assert all_cli.run(args) == 0
    return calls


def test_default_rtdnas_runs_the_shipped_seed_beside_msnas_hw(monkeypatch, tmp_path):
    calls = _stage_argv(monkeypatch, tmp_path)
    rt = calls["search.methods.rtdnas.cli"]
    assert rt[rt.index("--seed") + 1] == "1"
    assert rt[rt.index("--out") + 1].endswith("rtdnas/default-seed1")
    assert rt[rt.index("--msnas-dir") + 1].endswith("msnas-hw/default")
    assert "--out" not in calls["search.methods.msnas_hw.cli"]  # the method's own default run folder


def test_runs_folder_is_passed_to_every_method(monkeypatch, tmp_path):
    calls = _stage_argv(monkeypatch, tmp_path, extra=["--preset", "smoke", "--runs", str(tmp_path / "runs")])
    for key, method in (("segqc_hw.cli", "segqc-hw"), ("segqc_hw.cli --task bmode", "segqc-hw-bmode"),
                        ("msnas_hw.cli", "msnas-hw"), ("rtdnas.cli", "rtdnas")):
        argv = calls[f"search.methods.{key}"]
        assert argv[argv.index("--out") + 1] == str(tmp_path / "runs" / method / "smoke")


def test_bmode_segqc_hw_stage_follows_the_contrast_one(monkeypatch, tmp_path):
    """``python -m search``: segqc-hw on B-mode (``--task bmode``) right after contrast, in its own run folder."""
    assert all_cli.STAGES.index("segqc-hw-bmode") == all_cli.STAGES.index("segqc-hw") + 1
    calls = _stage_argv(monkeypatch, tmp_path)
    contrast, bmode = calls["search.methods.segqc_hw.cli"], calls["search.methods.segqc_hw.cli --task bmode"]
    assert "--task" not in contrast and bmode[:4] == ["--preset", "default", "--task", "bmode"]
    assert "--out" not in bmode  # the method's own default: runs/segqc-hw-bmode/default, docs/segqc-bmode


def test_a_dataset_run_never_writes_into_docs(monkeypatch, tmp_path):
    """``--data KIND:DIR``: the shipped seed's run (rtdnas default) keeps its report in its run folder, not docs/."""
    monkeypatch.setattr(all_cli, "data_skip", lambda stage, spec: None)
    (tmp_path / "acdc").mkdir()
    calls = _stage_argv(monkeypatch, tmp_path, extra=["--data", f"acdc:{tmp_path / 'acdc'}"])
    rt = calls["search.methods.rtdnas.cli"]
    assert "--docs-dir" not in rt and rt[rt.index("--out") + 1].endswith("rtdnas/default-seed1-acdc")


def test_the_chain_re_times_the_cards_at_the_end_unless_told_not_to(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(all_cli, "retime_models", lambda models, preset: calls.append((models, preset)) or "done: 0")
    _stage_argv(monkeypatch, tmp_path)
    assert calls == [(tmp_path / "models", "default")]
    _stage_argv(monkeypatch, tmp_path / "b", extra=["--no-retime"])
    assert len(calls) == 1


def test_the_final_retime_waits_for_a_quiet_machine_then_gives_up_with_the_command_to_run(monkeypatch, tmp_path):
    from search.export.retime import RetimeRefused

    loads, slept, now = iter([3.0, 2.5, 1.0]), [], [0.0]

    def busy(models, **kw):
        load = next(loads)
        if load > 1.5:
            raise RetimeRefused(f"load average {load:.2f} is above 1.50", load)
        return ["a", "b"]

    def sleep(s):
        slept.append(s)
        now[0] += s

    monkeypatch.setattr("search.export.retime.retime_cards", busy)
    status = all_cli.retime_models(tmp_path, "default", wait_s=60, poll_s=15, sleep=sleep, clock=lambda: now[0])
    assert status == "done: 2 cards re-timed together" and slept == [15, 15]
    loads = iter([3.0] * 10)
    now[0], slept[:] = 0.0, []
    status = all_cli.retime_models(tmp_path, "default", wait_s=60, poll_s=15, sleep=sleep, clock=lambda: now[0])
    assert status.startswith("not re-timed (load average 3.00") and slept == [15, 15, 15, 15]
    assert f"python -m search retime --models-dir {tmp_path}" in status
    monkeypatch.undo()  # the real retime: an empty folder is refused at once, not waited on
    now[0], slept[:] = 0.0, []
    empty = all_cli.retime_models(tmp_path, "default", wait_s=60, poll_s=15, sleep=sleep, clock=lambda: now[0])
    assert slept == [] and empty.startswith(f"not re-timed ({tmp_path}: no model cards to re-time)")


def test_the_smoke_chain_re_times_once_whatever_the_load(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr("search.export.retime.retime_cards", lambda models, **kw: seen.append(kw) or [])
    assert all_cli.retime_models(tmp_path, "smoke").startswith("done")
    assert seen[0]["max_load"] == float("inf") and seen[0]["rounds"] == 1


def test_the_skeleton_qc_stage_scores_the_model_the_skeleton_stage_shipped(monkeypatch, tmp_path):
    """cine-skeleton runs after the 3D cine stages; its QC stage challenges the default only when its card is there."""
    assert all_cli.STAGES[-2:] == ("cine-skeleton", "cine-qc-skeleton")
    seen = []

    def fake_run(module, argv, models_dir):
        seen.append((module.__name__, argv))
        return 0

    monkeypatch.setattr(all_cli, "_run_module", fake_run)
    parser = argparse.ArgumentParser()
    all_cli.configure(parser)
    base = ["--models", str(tmp_path / "models"), "--work", str(tmp_path / "work"), "--no-retime",
            "--skip", *[s for s in all_cli.STAGES if not s.startswith("cine-qc-skeleton")]]
    assert all_cli.run(parser.parse_args(base)) == 0
    assert seen == []  # no cine-skeleton card: nothing to score
    record = (tmp_path / "work" / "stages.json").read_text()
    assert '"cine-qc-skeleton"' in record
    import json
    from pathlib import Path

    card = json.loads((Path(__file__).resolve().parents[3] / "models" / "baseline-unet2d-d3-if16.json").read_text())
    (tmp_path / "models" / "cine-skeleton-hw.json").write_text(json.dumps({**card, "id": "cine-skeleton-hw"}))
    all_cli.run(parser.parse_args([*base, "--redo"]))  # exit 1: the summary rejects the card (no ONNX file)
    (name, argv), = seen
    assert name == "search.methods.cine_qc.cli" and argv[argv.index("--seg-model") + 1] == "cine-skeleton-hw"
    assert "--challenge" in argv and argv[argv.index("--out") + 1].endswith("cine-qc-skeleton/default")


def test_the_cine_qc_stage_scores_the_rtdnas_clip_model_not_the_cine_default(monkeypatch, tmp_path):
    """On a fresh checkout the cine default is the shipped cine-skeleton-hw (its QC stage comes last): the
    ``cine-qc`` stage must still train the QC of the rtdnas clip model the ``rtdnas`` stage shipped."""
    import json
    from pathlib import Path

    seen = []
    monkeypatch.setattr(all_cli, "_run_module", lambda module, argv, models_dir: seen.append(argv) or 0)
    parser = argparse.ArgumentParser()
    all_cli.configure(parser)
    base = ["--models", str(tmp_path / "models"), "--work", str(tmp_path / "work"), "--no-retime",
            "--skip", *[s for s in all_cli.STAGES if s != "cine-qc"]]
    assert all_cli.run(parser.parse_args(base)) == 0
    assert seen == []  # no rtdnas clip model: nothing to score
    shipped = Path(__file__).resolve().parents[3] / "models"
    for name in ("cine-skeleton-hw", "cine-rtdnas-ga-n7", "cine-rtdnas-ga-n7-stream"):  # default, clip, streaming
        card = json.loads((shipped / f"{name}.json").read_text())
        (tmp_path / "models" / f"{name}.json").write_text(json.dumps(card))
    all_cli.run(parser.parse_args([*base, "--redo"]))  # exit 1: the summary rejects the cards (no ONNX files)
    argv, = seen
    assert argv[argv.index("--seg-model") + 1] == "cine-rtdnas-ga-n7"


def test_threads_reach_every_training_stage_and_each_stage_command_takes_them(monkeypatch, tmp_path):
    """``python -m search --threads N``: every stage in THREADED gets ``--threads N`` (last, over a stage's own),
    parsed by that stage's own command; the cine-skeleton stage (its threads are also its timing threads) does not."""
    parsed = _stage_argvs(monkeypatch, tmp_path, "--threads", "3")
    ran = [s for s in all_cli.STAGES if s not in ("profile", "baselines", *all_cli.OPTIONAL)]
    assert len(parsed) == len(ran)  # every stage ran, but profile, baselines and the retired ones
    threads = [ns.threads for name, argv, ns in parsed if "--threads" in argv]
    assert len(threads) == len(set(all_cli.THREADED) & set(ran)) and set(threads) == {3}
    (skeleton_argv,) = [argv for name, argv, _ in parsed if name == "search.methods.cine_skeleton.cli"]
    assert "--threads" not in skeleton_argv
    parser = argparse.ArgumentParser()
    all_cli.configure(parser)
    assert parser.parse_args([]).threads is None  # no count given: the chain resolves it when it runs (below)


def test_without_an_rtdnas_clip_model_the_cine_qc_stage_scores_msnas_hw_s(tmp_path):
    import json
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[3] / "models"
    (tmp_path / "cine-skeleton-hw.json").write_text((shipped / "cine-skeleton-hw.json").read_text())
    assert all_cli._clip_model_id(tmp_path, "default") is None
    card = json.loads((shipped / "cine-msnas-hw-ours-n1.json").read_text())
    (tmp_path / "cine-msnas-hw-ours-n1.json").write_text(json.dumps(card))
    assert all_cli._clip_model_id(tmp_path, "default") == "cine-msnas-hw-ours-n1"
    assert all_cli._clip_model_id(tmp_path, "smoke") is None  # another preset's model is not this run's
    (tmp_path / "cine-rtdnas-ga-n7.json").write_text((shipped / "cine-rtdnas-ga-n7.json").read_text())
    assert all_cli._clip_model_id(tmp_path, "default") == "cine-rtdnas-ga-n7"  # rtdnas' first


def _last(argv: list[str], flag: str) -> str:
    """The value of the last ``flag`` in ``argv`` (the one argparse keeps)."""
    return argv[len(argv) - argv[::-1].index(flag)]


def _stage_argvs(monkeypatch, tmp_path, *argv: str) -> list[tuple[str, list[str], argparse.Namespace]]:
    """``(module, argument list, parsed)`` of every stage the chain runs, each list parsed by the stage's own
    command; profile and baselines left out."""
    seen = []

    def fake_run(module, stage_argv, models_dir):
        parser = argparse.ArgumentParser()
        module.configure(parser)
        seen.append((module.__name__, stage_argv, parser.parse_args(stage_argv)))
        return 0

    monkeypatch.setattr(all_cli, "_run_module", fake_run)
    monkeypatch.setattr(all_cli, "QC_OF_SHIPPED", {k: (w, lambda models, preset: "some-model")
                                                   for k, (w, _) in all_cli.QC_OF_SHIPPED.items()})
    parser = argparse.ArgumentParser()
    all_cli.configure(parser)
    all_cli.run(parser.parse_args(["--models", str(tmp_path / "models"), "--work", str(tmp_path / "work"),
                                   "--no-retime", "--skip", "profile", "baselines", *argv]))
    return seen


def test_by_default_every_training_stage_gets_the_machines_cores_and_smoke_keeps_its_own(monkeypatch, tmp_path):
    monkeypatch.setattr(all_cli, "default_threads", lambda: 5)
    default = [a for _, a, _ in _stage_argvs(monkeypatch, tmp_path / "d")]
    with_threads = [a for a in default if "--threads" in a]
    assert len(with_threads) == len(set(all_cli.THREADED) - set(all_cli.OPTIONAL))
    assert all(_last(a, "--threads") == "5" for a in with_threads)  # the last one wins over a stage's own
    smoke = [a for _, a, _ in _stage_argvs(monkeypatch, tmp_path / "s", "--preset", "smoke")]
    assert all(_last(a, "--threads") == "2" for a in smoke if "--threads" in a)  # only the QC challenges' own


def test_default_threads_are_the_cores_this_process_may_use():
    import os

    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert all_cli.default_threads() == expected >= 1


def test_the_retired_stages_run_only_with_with_and_the_diagnostics_only_with_diagnostics(monkeypatch, tmp_path):
    default = [a for _, a, _ in _stage_argvs(monkeypatch, tmp_path / "d")]
    assert not any("--size" in a for a in default)  # no 128x112 streaming stage
    segqc = [a for a in default if "--no-random-controls" in a]
    assert len(segqc) == 2 and any(a[a.index("--task") + 1] == "bmode" for a in segqc if "--task" in a)
    full = [a for _, a, _ in _stage_argvs(monkeypatch, tmp_path / "f", "--with", *all_cli.OPTIONAL, "--diagnostics")]
    assert len(full) == len(default) + 2 and any(a[a.index("--size") + 1] == "128x112" for a in full if "--size" in a)
    assert not any("--no-random-controls" in a or "--no-cloud" in a for a in full)
    rtdnas = [(m, a, ns) for m, a, ns in _stage_argvs(monkeypatch, tmp_path / "r") if m.endswith("rtdnas.cli")]
    assert len(rtdnas) == 1 and "--no-cloud" in rtdnas[0][1] and rtdnas[0][2].cloud is False  # Fig. 2's cloud: out


def test_each_stage_keeps_its_commands_precision_unless_the_chain_is_given_one(monkeypatch, tmp_path):
    from search.train import precision

    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    default = _stage_argvs(monkeypatch, tmp_path / "d")
    assert default and not any("--precision" in a for _, a, _ in default)  # each stage's own default
    defaults = {m.removeprefix("search.methods."): ns.precision_default for m, _, ns in default}
    assert defaults["cine_qc.cli"] == defaults["cine_skeleton.cli"] == "auto"  # (baselines: skipped by _stage_argvs)
    from search.baselines import cli as baselines_cli

    parser = argparse.ArgumentParser()
    baselines_cli.configure(parser)
    assert parser.parse_args([]).precision_default == "auto"
    assert defaults["segqc_hw.cli"] == defaults["msnas_hw.cli"] == defaults["rtdnas.cli"] == "fp32"
    assert defaults["rtdnas.streaming"] == "fp32"  # rtdnas-stream
    told = _stage_argvs(monkeypatch, tmp_path / "t", "--precision", "auto")
    assert all(_last(a, "--precision") == "bf16" for _, a, _ in told)  # resolved once, given to every stage
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    told = _stage_argvs(monkeypatch, tmp_path / "n", "--preset", "smoke", "--precision", "auto")
    assert all(_last(a, "--precision") == "fp32" for _, a, _ in told)
