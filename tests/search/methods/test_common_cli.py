"""Every method command takes the same flags; the old spellings still work, hidden and deprecated."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from search.methods import common_cli
from search.methods.msnas_hw import cli as msnas_cli
from search.methods.rtdnas import cli as rtdnas_cli
from search.methods.segqc_hw import cli as segqc_cli

CLIS = {"segqc-hw": segqc_cli, "msnas-hw": msnas_cli, "rtdnas": rtdnas_cli}
COMMON = ("--preset", "--out", "--seed", "--models-dir", "--docs-dir", "--no-ship", "--device", "--threads")


def _parser(module) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m")
    module.configure(parser)
    return parser


@pytest.mark.parametrize("name", CLIS)
def test_every_method_takes_the_common_flags(name: str, tmp_path) -> None:
    parser = _parser(CLIS[name])
    text = parser.format_help()
    assert all(flag in text for flag in COMMON), name
    assert all(old not in text.split() for old in common_cli.DEPRECATED), "deprecated spellings are hidden"
    args = parser.parse_args(["--preset", "smoke", "--out", str(tmp_path), "--seed", "3", "--models-dir", "m",
                              "--docs-dir", "d", "--no-ship", "--device", "cpu"])
    assert (args.preset, args.out, args.seed, args.models_dir, args.docs_dir, args.no_ship, args.device) == \
        ("smoke", tmp_path, 3, Path("m"), Path("d"), True, "cpu")


@pytest.mark.parametrize("name", CLIS)
def test_old_spellings_still_work_and_say_they_are_deprecated(name: str, capsys) -> None:
    args = _parser(CLIS[name]).parse_args(["--models", "m", "--docs", "d", "--no-export"])
    assert (args.models_dir, args.docs_dir, args.no_ship) == (Path("m"), Path("d"), True)
    err = capsys.readouterr().err
    assert "--models is deprecated; use --models-dir" in err and "--no-export is deprecated; use --no-ship" in err


def test_run_places_defaults(tmp_path) -> None:
    parser = argparse.ArgumentParser()
    common_cli.add_method_arguments(parser, method="toy", preset_help="")
    smoke = common_cli.run_places(parser.parse_args(["--preset", "smoke"]), method="toy", docs_name="t", root=tmp_path)
    assert smoke == common_cli.RunPlaces(tmp_path / "runs/toy/smoke", tmp_path / "runs/toy/smoke/models", None)
    full = common_cli.run_places(parser.parse_args([]), method="toy", docs_name="t", root=tmp_path)
    assert full == common_cli.RunPlaces(tmp_path / "runs/toy/default", tmp_path / "models", tmp_path / "docs/t")
    off = common_cli.run_places(parser.parse_args(["--no-ship", "--out", "o"]), method="toy", docs_name="t",
                                root=tmp_path)
    assert off.models_dir is None and off.out == Path("o").resolve()  # absolute: the stage harness joins onto it
    # so are --models-dir and --docs-dir: a report copied to a relative docs folder is where the harness checks it
    rel = common_cli.run_places(parser.parse_args(["--out", "o", "--models-dir", "m", "--docs-dir", "d"]),
                                method="toy", docs_name="t", root=tmp_path)
    assert rel == common_cli.RunPlaces(Path("o").resolve(), Path("m").resolve(), Path("d").resolve())


@pytest.mark.parametrize("name", ["msnas-hw", "rtdnas"])
def test_cpu_only_methods_refuse_another_device_in_one_line(name: str) -> None:
    args = _parser(CLIS[name]).parse_args(["--device", "cuda"])
    with pytest.raises(SystemExit, match=f"{name}: --device cuda: this method searches and trains on the CPU only"):
        CLIS[name].run(args)


def test_threads_override_the_presets_and_refuse_zero(capsys) -> None:
    from search.methods.msnas_hw.config import preset

    parser = _parser(msnas_cli)
    cfg = preset("smoke")
    assert common_cli.with_runtime(cfg, parser.parse_args([])) is cfg  # absent: the preset's
    assert common_cli.with_runtime(cfg, parser.parse_args(["--threads", "2"])).threads == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["--threads", "0"])
    assert "must be at least 1" in capsys.readouterr().err
