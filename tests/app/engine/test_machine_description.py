"""Reports name the CPU model beside the core count (figures from two CPUs of one core count differ 3-4x)."""

from __future__ import annotations

import builtins
import io

from app.engine import replay


def test_the_description_names_the_cpu_model_when_it_is_known(monkeypatch) -> None:
    monkeypatch.setattr(replay, "cpu_model", lambda: "Some CPU 9000")
    text = replay.machine_description()
    assert "-core " in text and "CPU (Some CPU 9000), onnxruntime " in text
    monkeypatch.setattr(replay, "cpu_model", lambda: None)
    assert "CPU, onnxruntime " in replay.machine_description()


def test_the_model_comes_from_cpuinfo_or_the_platform(monkeypatch) -> None:
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if str(path) == "/proc/cpuinfo":
            return io.StringIO("processor\t: 0\nvendor_id\t: X\nmodel name\t: Test Xeon @ 2.0GHz\n")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert replay.cpu_model() == "Test Xeon @ 2.0GHz"

    def no_cpuinfo(path, *args, **kwargs):
        if str(path) == "/proc/cpuinfo":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_cpuinfo)
    monkeypatch.setattr(replay.platform, "processor", lambda: "arm64")
    assert replay.cpu_model() == "arm64"
    monkeypatch.setattr(replay.platform, "processor", lambda: "")
    assert replay.cpu_model() is None
