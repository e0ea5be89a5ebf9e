"""Training precision: fp32 by default, bf16 autocast when asked, ``auto`` only where the CPU has bf16."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from search.train import precision
from search.train.loop import TrainConfig, fit, seed_everything
from search.train.stages import StageRunner


def test_fp32_is_the_default_and_autocast_then_does_nothing():
    assert precision.current() == "fp32"
    conv = torch.nn.Conv2d(1, 2, 3)
    with precision.autocast():
        assert conv(torch.randn(1, 1, 5, 5)).dtype == torch.float32
    assert precision.tag({"a": 1}) == {"a": 1}


def test_bf16_autocasts_the_convolutions_and_is_tagged():
    assert precision.use("bf16") == "bf16" == precision.current()
    conv = torch.nn.Conv2d(1, 2, 3)
    with precision.autocast():
        assert conv(torch.randn(1, 1, 5, 5)).dtype == torch.bfloat16
    assert precision.tag({"a": 1}) == {"a": 1, "precision": "bf16"}
    assert precision.tag([1]) == [1]


def test_auto_takes_bf16_only_where_the_cpu_computes_it(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    assert precision.resolve("auto") == "bf16"
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    assert precision.resolve("auto") == "fp32"
    assert precision.resolve("bf16") == "bf16" and precision.resolve("fp32") == "fp32"
    with pytest.raises(ValueError, match="unknown precision 'fp16'; known: fp32, bf16, auto"):
        precision.resolve("fp16")


def test_the_flag_defaults_to_the_commands_own_and_to_fp32_for_smoke(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    parser = argparse.ArgumentParser()
    precision.add_argument(parser)
    assert parser.parse_args([]).precision is None
    assert precision.use_args(parser.parse_args([]), "default") == "bf16"
    assert precision.use_args(parser.parse_args([]), "smoke") == "fp32"
    assert precision.use_args(parser.parse_args(["--precision", "fp32"]), "default") == "fp32"
    assert precision.use_args(parser.parse_args(["--precision", "bf16"]), "smoke") == "bf16"
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp16"])
    searches = argparse.ArgumentParser()
    precision.add_argument(searches, default="fp32", why=", measured")
    assert precision.use_args(searches.parse_args([]), "default") == "fp32"
    assert precision.use_args(searches.parse_args(["--precision", "auto"]), "default") == "bf16"
    with pytest.raises(ValueError, match="unknown precision"):
        precision.add_argument(argparse.ArgumentParser(), default="fp16")


def test_importing_the_module_leaves_torch_alone():
    import subprocess
    import sys

    code = "import sys, search.train.precision as p; p.resolve('fp32'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_tagged_config_is_rebuilt_without_its_precision():
    from search.methods.rtdnas.config import RtdnasConfig, preset
    from search.report.sections import config_from_dict

    cfg = preset("smoke")
    precision.use("bf16")
    doc = json.loads(json.dumps(precision.tag(cfg.to_dict())))
    assert doc["precision"] == "bf16" and precision.untag(doc) == json.loads(json.dumps(cfg.to_dict()))
    assert config_from_dict(RtdnasConfig, doc) == cfg


def _tiny_fit(mode: str) -> tuple[torch.nn.Module, list[float]]:
    precision.use(mode)
    seed_everything(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 8, 8, generator=g)
    y = (x[:, 0] > 0).long()
    data = torch.utils.data.TensorDataset(x, y)

    def step(model, batch):
        images, labels = batch
        return torch.nn.functional.cross_entropy(model(images), labels)

    losses = fit(net, step, data, TrainConfig(epochs=20, batch_size=8, lr=2e-2, seed=0))
    return net, losses


def test_bf16_training_learns_keeps_float32_weights_and_differs_from_fp32():
    net16, losses16 = _tiny_fit("bf16")
    net32, losses32 = _tiny_fit("fp32")
    assert all(math.isfinite(v) for v in losses16) and losses16[-1] < 0.6 * losses16[0]
    assert all(p.dtype == torch.float32 for p in net16.parameters())  # master weights, exported as they are
    assert losses16 != losses32  # the bf16 arithmetic really ran
    assert abs(losses16[-1] - losses32[-1]) < 0.1


def test_a_bf16_run_folder_hashes_apart_and_fp32_hashes_as_before(tmp_path):
    before = StageRunner(tmp_path / "a", {"lr": 1}).config_hash
    precision.use("bf16")
    bf16 = StageRunner(tmp_path / "b", {"lr": 1}).config_hash
    precision.use("fp32")
    assert StageRunner(tmp_path / "c", {"lr": 1}).config_hash == before != bf16
    assert StageRunner(tmp_path / "d", {"lr": 1, "threads": 2}).config_hash == before  # threads stay runtime-only


def test_the_bilevel_search_steps_run_in_bf16_with_a_float32_latency_term(tmp_path):
    from search.methods.msnas_hw.config import SearchConfig
    from search.methods.msnas_hw.search import ArchitectureSearch
    from tests.search.tiny_supernet import TinySupernet, tiny_loader

    precision.use("bf16")
    torch.manual_seed(0)
    net = TinySupernet()
    cfg = SearchConfig(warmup_steps=1, search_steps=20, batch_size=2, latency_lambda=1.0, arch_lr=0.05)
    history = ArchitectureSearch(net, net.latency, tiny_loader(0), tiny_loader(1), cfg,
                                 generator=torch.Generator().manual_seed(0)).run()
    assert [r.phase for r in history][:2] == ["warmup", "search"]
    assert all(math.isfinite(r.latency_ms) for r in history[1:])
    assert net.alpha.dtype == torch.float32
    w = torch.softmax(net.alpha.detach(), 0)
    assert w[1] > w[0]  # the 1 ms op still wins under a strong latency weight


def test_method_commands_take_their_own_default_and_never_a_stale_one(monkeypatch):
    from search.methods.common_cli import add_method_arguments, with_runtime
    from search.methods.rtdnas.config import preset

    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    parser = argparse.ArgumentParser()
    add_method_arguments(parser, method="rtdnas", preset_help="", device_help="")
    precision.use("bf16")  # left by an earlier command of this process
    with_runtime(preset("smoke"), parser.parse_args([]))
    assert precision.current() == "fp32"  # smoke: fp32 on every machine
    with_runtime(preset("smoke"), parser.parse_args(["--precision", "bf16"]))
    assert precision.current() == "bf16"
    with_runtime(preset("default"), parser.parse_args([]))
    assert precision.current() == "fp32"  # rtdnas' own default: its cell-based networks do not gain
    with_runtime(preset("default"), parser.parse_args(["--precision", "auto"]))
    assert precision.current() == "bf16"


def test_segqc_searches_and_retrains_hash_apart_in_bf16():
    from search.methods.segqc_hw.config import preset
    from search.methods.segqc_hw.experiment import retrain_config, search_config

    cfg = preset("smoke")
    fp32 = (search_config(cfg, 0.01, 0), retrain_config(cfg, {"a": 1}))
    assert "precision" not in fp32[0] and "precision" not in fp32[1]
    precision.use("bf16")
    assert search_config(cfg, 0.01, 0) == {**fp32[0], "precision": "bf16"}
    assert retrain_config(cfg, {"a": 1}) == {**fp32[1], "precision": "bf16"}


def test_a_card_says_bf16_training_and_an_fp32_card_says_nothing(tmp_path):
    from search.export.card_writer import CardContent, TensorSpec, build_card

    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not really onnx")
    content = CardContent(model_id="m", modality="cine", role="seg", method="msnas-hw",
                          inputs=[TensorSpec("clip", (1, 1, 4, 16, 16))], outputs=[TensorSpec("probs", (1, 4, 4, 16, 16))],
                          classes={0: "bg", 1: "RV"}, normalisation={"kind": "zscore"}, layout="NCTHW", data={})
    assert "training_precision" not in build_card(content, onnx_path=onnx, metrics={}, export={})
    precision.use("bf16")
    assert build_card(content, onnx_path=onnx, metrics={}, export={})["training_precision"] == "bf16"


def _fit_epochs(checkpoint, epochs: int) -> list[float]:
    seed_everything(0)
    net = torch.nn.Conv2d(1, 2, 3, padding=1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 6, 6, generator=g)
    data = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())

    def step(model, batch):
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    return fit(net, step, data, TrainConfig(epochs=epochs, batch_size=4, lr=1e-2, seed=0), checkpoint=checkpoint)


def test_a_checkpoint_interrupted_mid_stage_resumes_only_in_its_own_precision(tmp_path):
    ckpt = tmp_path / "seg.pt"
    precision.use("bf16")
    _fit_epochs(ckpt, 2)  # "interrupted" after 2 of 4 epochs
    assert torch.load(ckpt, weights_only=False)["precision"] == "bf16"
    precision.use("fp32")
    with pytest.raises(precision.PrecisionMismatch) as err:
        _fit_epochs(ckpt, 4)
    assert str(ckpt) in str(err.value) and "--precision bf16" in str(err.value)
    precision.use("bf16")
    assert len(_fit_epochs(ckpt, 4)) == 4  # the same precision resumes
    state = torch.load(ckpt, weights_only=False)
    del state["precision"]  # a checkpoint from before the stamp
    torch.save(state, ckpt)
    precision.use("fp32")
    assert len(_fit_epochs(ckpt, 5)) == 5


def test_the_bilevel_search_checkpoint_is_stamped_and_checked(tmp_path):
    from search.methods.msnas_hw.config import SearchConfig
    from search.methods.msnas_hw.search import ArchitectureSearch
    from tests.search.tiny_supernet import TinySupernet, tiny_loader

    def search(steps: int):
        torch.manual_seed(0)
        net = TinySupernet()
        cfg = SearchConfig(warmup_steps=1, search_steps=steps, batch_size=2, latency_lambda=1.0, arch_lr=0.05)
        return ArchitectureSearch(net, net.latency, tiny_loader(0), tiny_loader(1), cfg,
                                  generator=torch.Generator().manual_seed(0), checkpoint=tmp_path / "search.pt",
                                  checkpoint_every=1).run()

    search(2)
    assert torch.load(tmp_path / "search.pt", weights_only=False)["precision"] == "fp32"
    precision.use("bf16")
    with pytest.raises(precision.PrecisionMismatch, match="--precision fp32"):
        search(4)


def test_the_command_line_reports_a_precision_mismatch_in_one_line(monkeypatch, capsys):
    import search.cli as cli

    def boom(*_args, **_kwargs):
        raise precision.PrecisionMismatch("runs/x/seg.pt: this checkpoint was trained in bf16 ...")

    monkeypatch.setattr(cli, "dispatch", boom)
    assert cli.main(["baselines"]) == 2
    assert capsys.readouterr().err.strip() == "error: runs/x/seg.pt: this checkpoint was trained in bf16 ..."
