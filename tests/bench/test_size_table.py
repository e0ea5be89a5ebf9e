"""bench/size_table.py on a tiny synthetic segqc-hw run: structure, ratios and resume (never wall-clock thresholds)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.bench.bench_module import load_bench
from tests.search.methods.synthetic_echo import synthetic_protocol_parts

NETWORKS = {"searched_hw_seed0", "searched_nohw_seed0", "unet8", "unet16"}


def tiny_run(folder: Path) -> Path:
    """A finished-looking smoke run: config.json, data/ cache of synthetic patients, two genotype.json."""
    from search.core.decode import decode_nasunet, decode_qc
    from search.core.genotypes import SegQcGenotype
    from search.methods.segqc_hw.config import preset
    from search.methods.segqc_hw.data import load_protocol
    from search.methods.segqc_hw.search import build_supernets
    from search.train.cine_rows import write_json

    cfg = preset("smoke")
    write_json(folder / "config.json", cfg.to_dict())
    parts = synthetic_protocol_parts()
    load_protocol(cfg.data, folder / "data", cases_for=lambda _: parts)
    for i, (variant, lam) in enumerate((("hw", 0.001), ("nohw", 0.0))):
        seg, qc = build_supernets(cfg, i)
        genotype = SegQcGenotype(decode_nasunet(seg.net), decode_qc(qc.net))
        write_json(folder / "search" / variant / "seed0" / "genotype.json", {"genotype": genotype.to_json(), "lambda2": lam})
    return folder


def test_every_network_at_every_size_then_resume_skips_training(tmp_path: Path) -> None:
    bench = load_bench("size_table")
    run = tiny_run(tmp_path / "run")
    out = tmp_path / "size_table.json"
    argv = ["--run", str(run), "--sizes", "32", "64", "--epochs", "1", "--repeats", "1", "--warmup", "0",
            "--threads", "1", "--torch-threads", "1", "--out", str(out)]
    assert bench.main(argv) == 0
    result = json.loads(out.read_text())
    assert set(result["networks"]) == NETWORKS and result["sizes"] == [32, 64]
    for size in ("32", "64"):
        rows = result["by_size"][size]["networks"]
        assert set(rows) == NETWORKS
        assert rows["unet16"]["ratio_to_unet16"] == pytest.approx(1.0)
        assert any(r["pareto"] for r in rows.values())
        for key, r in rows.items():
            assert 0.0 <= r["dice_test"] <= 1.0 and r["n_test_frames"] == 2 * 2, key
            assert r["latency"]["p50_ms"] > 0 and r["latency"]["threads"] == 1 and r["latency"]["repeats"] == 1
            assert r["macs"] > 0 and "qc" not in r
        assert len(result["by_size"][size]["loadavg_before"]) == 3
    assert result["by_size"]["64"]["networks"]["unet16"]["macs"] > 3 * result["by_size"]["32"]["networks"]["unet16"]["macs"]
    assert result["settings"]["seg_epochs"] == 1 and result["machine"]["torch"] and result["machine"]["onnxruntime"]
    text = out.with_suffix(".md").read_text()
    assert "Dice @32" in text and "x U-net(16) @64" in text and "| U-net(16) |" in text

    stages = json.loads((run / "size_table" / "stages.json").read_text())["stages"]
    assert set(stages) == {f"{s}/{k}" for s in (32, 64) for k in NETWORKS}
    assert {r["status"] for r in stages.values()} == {"ran"}
    weights = run / "size_table" / "64" / "unet8" / "weights.pt"
    stamp = weights.stat().st_mtime_ns
    assert bench.main(argv) == 0  # resumed: every network read back from the work folder, only timed again
    stages = json.loads((run / "size_table" / "stages.json").read_text())["stages"]
    assert {r["status"] for r in stages.values()} == {"skipped"}
    assert weights.stat().st_mtime_ns == stamp
    again = json.loads(out.read_text())
    assert again["by_size"]["64"]["networks"]["unet8"]["dice_test"] == result["by_size"]["64"]["networks"]["unet8"]["dice_test"]


def test_pareto_mark() -> None:
    pareto = load_bench("size_table").pareto
    assert pareto((0.8, 10.0), [(0.7, 12.0), (0.9, 20.0)])
    assert not pareto((0.8, 10.0), [(0.8, 9.0)])
    assert pareto((0.8, 10.0), [(0.8, 10.0)])  # a tie dominates nothing


def test_with_qc_trains_qc_on_the_cached_seg_nets_then_scores_and_times_the_pairs(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    """``--with-qc`` after a seg-only table: every seg net is read back (not retrained) and only its QC net trains on
    it, frozen; the QC calibration (MAE, Pearson r, their spread over training seeds) joins the table."""
    import torch

    bench = load_bench("size_table")
    tiny_run(tmp_path / "run")
    out = tmp_path / "qc.json"
    monkeypatch.chdir(tmp_path)  # a relative --run, as typed at a shell (the stage harness needs it absolute)
    argv = ["--run", "run", "--sizes", "32", "--epochs", "1", "--repeats", "1", "--warmup", "0", "--threads", "1",
            "--torch-threads", "1", "--variants", "hw", "--train-seeds", "0", "1", "--out", str(out)]
    assert bench.main(argv) == 0
    seg_only = {k: r["dice_test"] for k, r in json.loads(out.read_text())["by_size"]["32"]["networks"].items()}
    with pytest.raises(SystemExit):  # QC epochs without QC nets
        bench.main(argv + ["--qc-epochs", "2"])
    assert bench.main(argv + ["--with-qc", "--qc-epochs", "2"]) == 0
    result = json.loads(out.read_text())
    rows = result["by_size"]["32"]["networks"]
    assert set(rows) == {"searched_hw_seed0", "unet8", "unet16"} and result["settings"]["qc_epochs"] == 2
    assert len(json.loads((tmp_path / "run" / "size_table" / "32" / "unet8-qc" / "scores.json").read_text())
               ["losses"]["qc"]) == 2
    for key, r in rows.items():
        pearson = r["qc"]["qc_pearson_test"]  # NaN where a tiny net's Dice is the same on every test frame
        assert r["qc"]["qc_mae_test"] >= 0 and (math.isnan(pearson) or -1 <= pearson <= 1)
        assert r["qc"]["pair"]["latency_ms"] > 0
        assert r["dice_test"] == pytest.approx(seg_only[key])  # the same seg net, rescored beside its QC net
        assert {s["qc_mae_test"] is not None for s in r["seeds"].values()} == {True}
    stages = json.loads((tmp_path / "run" / "size_table" / "stages.json").read_text())["stages"]
    keys = [f"{k}{t}" for k in rows for t in ("", "-seed1")]
    assert {stages[f"32/{k}"]["status"] for k in keys} == {"skipped"}  # seg nets read back, not retrained
    assert {stages[f"32/{k}-qc"]["status"] for k in keys} == {"ran"}
    seg_weights = torch.load(tmp_path / "run" / "size_table" / "32" / "unet8" / "weights.pt", weights_only=True)
    pair_weights = torch.load(tmp_path / "run" / "size_table" / "32" / "unet8-qc" / "weights.pt", weights_only=True)
    assert seg_weights["qc"] is None and pair_weights["qc"]
    for name, tensor in seg_weights["seg"].items():  # the seg net stayed frozen while its QC net trained
        assert torch.equal(tensor, pair_weights["seg"][name]), name
    text = out.with_suffix(".md").read_text()
    assert "seg+QC p50 ms @32" in text and "QC r @32" in text and "QC MAE over seeds @32" in text


def test_controls_and_the_spaces_unet_point_join_the_table_when_the_run_has_them(tmp_path: Path) -> None:
    """``--controls`` adds each ``search/random/<row>.json``; a droppable-inputs run with 2 nodes adds the U-net point
    of its space (its seg net reads only the previous cells), paired with the baselines' ResNet18 QC."""
    from dataclasses import replace

    import numpy as np
    import torch

    from search.methods.segqc_hw.config import preset
    from search.methods.segqc_hw.random_control import control_record, random_genotype, write_control
    from search.train.cine_rows import write_json

    bench = load_bench("size_table")
    run = tiny_run(tmp_path / "run")
    cfg = preset("smoke")
    assert {n.key for n in bench.networks(run, cfg, ["hw", "nohw"])} == NETWORKS
    with pytest.raises(SystemExit, match="no random control"):
        bench.networks(run, cfg, ["hw"], controls=True)
    genotype = random_genotype(cfg, np.random.default_rng(0))
    write_control(run / "search" / "random" / "searched_hw.json", control_record("searched_hw", (genotype, 3.2), 3.0, 0, 5))
    nets = {n.key: n for n in bench.networks(run, cfg, ["hw"], controls=True)}
    assert set(nets) == {"searched_hw_seed0", "random_searched_hw", "unet8", "unet16"}
    assert "3.2 ms predicted" in nets["random_searched_hw"].label
    seg, _ = nets["random_searched_hw"].build(0)
    assert seg.net.genotype == genotype.seg
    drop = replace(cfg, space=replace(cfg.space, nodes=2, droppable_inputs=True))
    write_json(run / "config.json", drop.to_dict())
    nets = {n.key: n for n in bench.networks(run, drop, [], controls=False)}
    assert set(nets) == {"space_unet", "unet8", "unet16"}
    seg, qc = nets["space_unet"].build(0)
    assert [type(c.preprocess[0]).__name__ for c in seg.net.cells] == ["Identity"] * len(seg.net.cells)
    assert type(qc) is type(nets["unet8"].build(0)[1])
    with torch.no_grad():
        assert seg.eval()(torch.rand(1, 3, 32, 32)).shape == (1, cfg.task.num_classes, 32, 32)


def test_training_seeds_give_each_network_a_spread_and_keep_the_run_seeds_cache(tmp_path: Path) -> None:
    bench = load_bench("size_table")
    run = tiny_run(tmp_path / "run")
    out = tmp_path / "seeds.json"
    argv = ["--run", str(run), "--sizes", "32", "--epochs", "1", "--repeats", "1", "--warmup", "0", "--threads", "1",
            "--torch-threads", "1", "--variants", "hw", "--out", str(out)]
    assert bench.main(argv + ["--train-seeds", "0", "5"]) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["train_seeds"] == [0, 5]
    rows = result["by_size"]["32"]["networks"]
    for key, e in rows.items():
        assert set(e["seeds"]) == {"0", "5"} and e["seeds"]["0"]["dice_test"] == pytest.approx(e["dice_test"]), key
        dice = [r["dice_test"] for r in e["seeds"].values()]
        assert e["dice_test_mean"] == pytest.approx(sum(dice) / 2) and e["dice_test_sd"] >= 0
    assert (run / "size_table" / "32" / "unet8" / "scores.json").is_file()  # the run's seed: the folder it always had
    assert (run / "size_table" / "32" / "unet8-seed5" / "scores.json").is_file()
    assert "Dice over 2 training seeds [0, 5]" in out.with_suffix(".md").read_text()
    # one seed again: everything read back, no spread section
    assert bench.main(argv) == 0
    again = json.loads(out.read_text())
    assert "seeds" not in again["by_size"]["32"]["networks"]["unet8"]
    assert again["by_size"]["32"]["networks"]["unet8"]["dice_test"] == pytest.approx(rows["unet8"]["dice_test"])
    assert "training seeds" not in out.with_suffix(".md").read_text()


def test_genotype_files_join_as_seg_networks_with_resnet_qc_and_a_bad_file_is_named(tmp_path: Path) -> None:
    import torch

    from search.core.supernets.nasunet import unet_like_genotype
    from search.methods.segqc_hw.config import preset

    bench = load_bench("size_table")
    run = tiny_run(tmp_path / "run")
    cfg = preset("smoke")
    seg_genotype = unet_like_genotype(keep_prev=True)
    good = tmp_path / "convskip.json"
    good.write_text(json.dumps({"label": "U-net, conv on the skip", "seg": seg_genotype.to_dict()}))
    nets = {n.key: n for n in bench.networks(run, cfg, ["hw"], genotypes=[good])}
    assert set(nets) == {"searched_hw_seed0", "genotype_convskip", "unet8", "unet16"}
    assert nets["genotype_convskip"].label == "U-net, conv on the skip + ResNet18 QC"
    assert nets["genotype_convskip"].architecture["seg_genotype"] == seg_genotype.to_dict()
    seg, qc = nets["genotype_convskip"].build(0)
    assert seg.net.genotype == seg_genotype and type(qc) is type(nets["unet8"].build(0)[1])
    with torch.no_grad():
        assert seg.eval()(torch.rand(1, 3, 32, 32)).shape == (1, cfg.task.num_classes, 32, 32)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"label": "no seg"}))
    with pytest.raises(SystemExit, match="bad.json: not a seg genotype file"):
        bench.networks(run, cfg, ["hw"], genotypes=[bad])
    # a skeleton probe (--stem-convs): the same genotypes in a U with another stem, cached apart (the space differs)
    from dataclasses import replace

    probe = replace(cfg, space=replace(cfg.space, stem_convs=2))
    nets2 = {n.key: n for n in bench.networks(run, probe, ["hw"], genotypes=[good])}
    assert nets2["genotype_convskip"].architecture["space"]["stem_convs"] == 2
    assert "stem_convs" not in nets["genotype_convskip"].architecture["space"]
    assert nets2["unet8"].architecture == nets["unet8"].architecture  # baselines are read back, not retrained
    assert len(nets2["searched_hw_seed0"].build(0)[0].net.stem) == 2
    with pytest.raises(SystemExit) as refused:
        bench.main(["--run", str(run), "--stem-convs", "0"])
    assert refused.value.code == 2  # the parser's refusal, before anything is built


def test_skeletons_join_as_seg_networks_with_resnet_qc_and_a_bad_spec_is_named(tmp_path: Path) -> None:
    """``--skeletons SPEC...``: U-nets of other per-level widths, ops and convs (``unet_skeleton`` specs), keyed by
    their spec ('/' -> 's', ':' -> '_'), each with the baselines' ResNet18 QC."""
    import torch

    from search.core.derived.unet_skeleton import SkeletonUNet
    from search.methods.segqc_hw.config import preset

    bench = load_bench("size_table")
    run = tiny_run(tmp_path / "run")
    cfg = preset("smoke")
    nets = {n.key: n for n in bench.networks(run, cfg, [], skeletons=["8c1-16s2", "/2:8c2-16c1-32s1"])}
    assert list(nets) == ["skeleton_8c1-16s2", "skeleton_s2_8c2-16c1-32s1", "unet8", "unet16"]
    assert nets["skeleton_s2_8c2-16c1-32s1"].label == "U-net skeleton /2:8c2-16c1-32s1 + ResNet18 QC"
    assert nets["skeleton_s2_8c2-16c1-32s1"].architecture == {"skeleton": "/2:8c2-16c1-32s1", "qc": "resnet18"}
    assert nets["skeleton_8c1-16s2"].architecture == {"skeleton": "8c1-16s2", "qc": "resnet18"}
    qc_type = type(nets["unet8"].build(0)[1])
    for key in ("skeleton_8c1-16s2", "skeleton_s2_8c2-16c1-32s1"):
        seg, qc = nets[key].build(0)
        assert isinstance(seg, SkeletonUNet) and seg.skeleton.spec == nets[key].architecture["skeleton"]
        assert type(qc) is qc_type, key
        with torch.no_grad():
            assert seg.eval()(torch.rand(1, 3, 32, 32)).shape == (1, cfg.task.num_classes, 32, 32), key
    from search.methods.segqc_hw.experiment import BASELINES

    assert bench.BASELINE_KEYS == BASELINES  # the parser's torch-free copy
    only16 = [n.key for n in bench.networks(run, cfg, [], skeletons=["8c1-16s2"], baselines=["unet16"])]
    assert only16 == ["skeleton_8c1-16s2", "unet16"]  # --baselines unet16: U-net(8) not trained
    kept = [n.key for n in bench.networks(run, cfg, [], skeletons=["8c1-16s2"], baselines=["unet8"])]
    assert kept == ["skeleton_8c1-16s2", "unet8", "unet16"]  # the reference of every ratio always stays
    with pytest.raises(SystemExit, match=r"--skeletons: .*'8c2-16q2'"):
        bench.networks(run, cfg, [], skeletons=["8c2-16q2"])
    with pytest.raises(SystemExit, match=r"'/1:8c2-16c2' is '8c2-16c2', given twice"):
        bench.networks(run, cfg, [], skeletons=["8c2-16c2", "/1:8c2-16c2"])


def test_a_size_a_skeleton_cannot_divide_is_refused_before_any_training(tmp_path: Path) -> None:
    bench = load_bench("size_table")
    run = tiny_run(tmp_path / "run")
    with pytest.raises(SystemExit, match=r"'/2:8c1-16c1-32c1' needs input sizes divisible by 8; \[36\] are not"):
        bench.main(["--run", str(run), "--sizes", "32", "36", "--epochs", "1", "--variants",
                    "--skeletons", "/2:8c1-16c1-32c1", "--out", str(tmp_path / "x.json")])
    assert not (run / "size_table").exists()


def test_no_variants_and_a_skeleton_time_only_the_skeleton_and_the_baselines(tmp_path: Path) -> None:
    """``--variants`` with no value: no searched rows (e.g. a run made with ``--stop-after data``)."""
    bench = load_bench("size_table")
    run = tiny_run(tmp_path / "run")
    out = tmp_path / "skeleton.json"
    assert bench.main(["--run", str(run), "--sizes", "32", "--epochs", "1", "--repeats", "1", "--warmup", "0",
                       "--threads", "1", "--torch-threads", "1", "--variants", "--skeletons", "/2:8c1-16c1",
                       "--time-at", "64", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    expected = {"skeleton_s2_8c1-16c1", "unet8", "unet16"}
    assert set(result["networks"]) == expected and set(result["by_size"]["32"]["networks"]) == expected
    assert result["settings"]["skeletons"] == ["/2:8c1-16c1"] and result["settings"]["variants"] == []
    row = result["by_size"]["32"]["networks"]["skeleton_s2_8c1-16c1"]
    assert 0.0 <= row["dice_test"] <= 1.0 and row["latency"]["p50_ms"] > 0 and row["macs"] > 0
    text = out.with_suffix(".md").read_text()
    assert "| U-net skeleton /2:8c1-16c1 + ResNet18 QC |" in text
    # --time-at: the networks trained at 32 timed at 64, seg + QC as Table II times them
    at = result["timed_at"]["64"]
    assert at["trained_at"] == 32 and set(at["networks"]) == expected
    assert at["networks"]["unet16"]["pair_ratio_to_unet16"] == pytest.approx(1.0)
    for key, e in at["networks"].items():
        assert 0 < e["seg_ms"] < e["latency_ms"] and e["qc_ms"] > 0, key
    macs_32 = result["by_size"]["32"]["networks"]["unet16"]["macs"]
    assert at["networks"]["unet16"]["macs"] > 3 * macs_32  # seg + QC at 64 against seg alone at 32
    assert "Timed at 64x64 (the networks trained at 32" in text


def test_distilled_twins_learn_from_the_teacher_of_their_own_seed_and_bad_rows_are_named(tmp_path: Path,
                                                                                         monkeypatch) -> None:
    """``--distill KEY...``: a ``-kd`` twin of each row trains after every teacher, learns from the teacher row's seg
    net of the same training seed, and differs from its plain twin only by that; the teacher is untouched. An
    unknown row or the teacher as its own student is one clear error."""
    import torch

    from search.methods.segqc_hw import retrain

    taught = []  # (temperature, the teacher's weights) of every Distillation made

    class Recorded(retrain.Distillation):
        def __post_init__(self) -> None:
            super().__post_init__()
            taught.append((self.temperature, {k: v.clone() for k, v in self.teacher.state_dict().items()}))

    monkeypatch.setattr(retrain, "Distillation", Recorded)
    bench = load_bench("size_table")
    run = tiny_run(tmp_path / "run")
    out = tmp_path / "kd.json"
    argv = ["--run", str(run), "--sizes", "32", "--epochs", "1", "--repeats", "1", "--warmup", "0", "--threads", "1",
            "--torch-threads", "1", "--variants", "--skeletons", "/2:8c1-16c1", "--train-seeds", "0", "1",
            "--out", str(out)]
    assert bench.main(argv) == 0
    work = run / "size_table" / "32"
    teacher_before = torch.load(work / "unet16-seed1" / "weights.pt", weights_only=True)["seg"]
    assert bench.main(argv + ["--distill", "skeleton_s2_8c1-16c1", "unet8", "--distill-temperature", "3"]) == 0
    result = json.loads(out.read_text())
    assert list(result["networks"])[-2:] == ["skeleton_s2_8c1-16c1-kd", "unet8-kd"]
    assert result["networks"]["unet8-kd"] == "U-net(8), distilled from U-net(16)"
    assert result["settings"]["distill"] == {"rows": ["skeleton_s2_8c1-16c1", "unet8"], "teacher": "unet16",
                                             "weight": 1.0, "temperature": 3.0}
    stages = json.loads((run / "size_table" / "stages.json").read_text())["stages"]
    assert {stages[f"32/{k}{t}"]["status"] for k in ("unet8", "unet16", "skeleton_s2_8c1-16c1")
            for t in ("", "-seed1")} == {"skipped"}
    assert {stages[f"32/{k}-kd{t}"]["status"] for k in ("unet8", "skeleton_s2_8c1-16c1")
            for t in ("", "-seed1")} == {"ran"}
    teachers = [torch.load(work / f"unet16{t}" / "weights.pt", weights_only=True)["seg"] for t in ("", "-seed1")]
    assert len(taught) == 4 and {t for t, _ in taught} == {3.0}  # 2 rows x 2 seeds, in seed order per row
    for (_, state), seed in zip(taught, (0, 1, 0, 1)):  # each twin learnt from the teacher of its own seed
        assert all(torch.equal(state[k], teachers[seed][k]) for k in state)
    for name, tensor in torch.load(work / "unet16-seed1" / "weights.pt", weights_only=True)["seg"].items():
        assert torch.equal(tensor, teacher_before[name]), name
    plain = torch.load(work / "unet8-seed1" / "weights.pt", weights_only=True)["seg"]
    distilled = torch.load(work / "unet8-kd-seed1" / "weights.pt", weights_only=True)["seg"]
    assert plain.keys() == distilled.keys() and not all(torch.equal(plain[k], distilled[k]) for k in plain)
    assert "distilled from U-net(16)" in out.with_suffix(".md").read_text()
    assert "T = 3" in out.with_suffix(".md").read_text()
    with pytest.raises(SystemExit, match=r"no row 'unet32'"):
        bench.main(argv + ["--distill", "unet32"])
    with pytest.raises(SystemExit, match=r"'unet16' is the teacher"):
        bench.main(argv + ["--distill", "unet16"])


def test_a_budgeted_search_says_its_budget_in_its_label(tmp_path: Path) -> None:
    from search.methods.segqc_hw.config import preset
    from search.train.cine_rows import read_json, write_json

    bench = load_bench("size_table")
    run = tiny_run(tmp_path / "run")
    record = run / "search" / "hw" / "seed0" / "genotype.json"
    write_json(record, {**read_json(record), "latency_budget_ms": 45.0})
    labels = {n.key: n.label for n in bench.networks(run, preset("smoke"), ["hw", "nohw"])}
    assert labels["searched_hw_seed0"] == "searched hw (lambda2 = 0.001, latency budget 45 ms, seed 0)"
    assert labels["searched_nohw_seed0"] == "searched nohw (lambda2 = 0, seed 0)"
