"""bench/sim_to_real.py on a tiny synthetic B-mode DICOM with tiny model pairs: outputs and report fields.

Structure only (no Dice or latency thresholds): the auto-detected run and the other echo mode forced,
the QC figures and traffic-light shares, the montage PNG, and the machine.
"""

from __future__ import annotations

import json

import cv2
import pytest

from tests.app.engine.tiny_models import write_echo_models
from tests.bench.bench_module import load_bench

pytestmark = pytest.mark.timeout(120)

FRAMES = 6


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    from app.data.phantom.echo import render_echo_case
    from app.data.writers import write_echo_dicom

    models = tmp_path_factory.mktemp("models")
    write_echo_models(models)  # contrast pair: tiny-echo-seg / -qc
    write_echo_models(models, seg_id="tiny-bmode-seg", qc_id="tiny-bmode-qc", echo_mode="bmode")
    data = tmp_path_factory.mktemp("data")
    dcm = write_echo_dicom(render_echo_case(7, 0, n_frames=FRAMES, size=64, variant="bmode"), data / "a4c.dcm", 1)
    (data / "a4c_mask.npz").unlink()  # like the real recording: no ground truth
    out = tmp_path_factory.mktemp("out")
    bench = load_bench("sim_to_real")
    code = bench.main(["--source", str(dcm), "--out", str(out), "--models-dir", str(models), "--frames", "4"])
    return code, out, bench


def test_writes_png_json_and_md_with_both_echo_modes(outputs):
    code, out, bench = outputs
    assert code == 0
    for name in ("sim_to_real.png", "sim_to_real.json", "sim_to_real.md"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    png = cv2.imread(str(out / "sim_to_real.png"))
    assert png is not None and png.shape[1] == bench.TILE_WIDTH * bench.COLUMNS
    result = json.loads((out / "sim_to_real.json").read_text())
    assert result["ground_truth"] is None and result["png"] == "sim_to_real.png"
    assert result["detected"]["mode"] in ("bmode", "contrast") and result["detected"]["reason"]
    assert {"platform", "cpu", "cores", "onnxruntime"} <= set(result["machine"])
    assert result["machine"]["intra_op_threads"] == 1
    assert result["thresholds"] == {"green_at_or_above": 0.8, "amber_at_or_above": 0.7}
    auto, forced = result["runs"]
    assert auto["echo_mode"]["requested"] == "auto" and forced["echo_mode"]["requested"] != "auto"
    assert {auto["echo_mode"]["mode"], forced["echo_mode"]["mode"]} == {"bmode", "contrast"}
    by_mode = {r["echo_mode"]["mode"]: r["models"]["seg"] for r in result["runs"]}
    assert by_mode == {"bmode": "tiny-bmode-seg", "contrast": "tiny-echo-seg"}
    for run in result["runs"]:
        assert run["mode"] == "fast" and run["processed"] == FRAMES and run["errors"] == 0
        q = run["qc_predicted_dice"]
        assert q["n"] == FRAMES and q["min"] <= q["median"] <= q["max"]
        shares = run["traffic_light"]["share"]
        assert sum(shares.values()) == pytest.approx(1.0, abs=0.01)
        assert run["montage_frames"] == [0, 2, 3, 5] and len(run["per_frame"]) == FRAMES
        assert all(f["light"] in ("green", "amber", "red") for f in run["per_frame"])
        assert set(run["masks"]) == {n for k, n in run["classes"].items() if k != "0"}
    md = (out / "sim_to_real.md").read_text()
    assert "no ground truth" in md and "tiny-bmode-seg" in md and "tiny-echo-seg" in md and "sim_to_real.png" in md
    assert result["command"].startswith("python bench/sim_to_real.py --source SOURCE --out")
    assert "a4c" not in json.dumps(result)  # a user's file is named by kind and hash, never by its name


def test_pick_frames_spreads_evenly():
    bench = load_bench("sim_to_real")
    assert bench.pick_frames(120, 6) == [0, 24, 48, 71, 95, 119]
    assert bench.pick_frames(3, 6) == [0, 1, 2] and bench.pick_frames(0, 6) == []
