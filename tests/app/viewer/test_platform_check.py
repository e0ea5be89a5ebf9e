"""The platform check: missing system libraries or an unreachable display give one line and exit 2, not Qt's abort."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.viewer import platform_check as pc

ROOT = Path(__file__).resolve().parents[3]

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd0d1f4000)
\tlibQt6XcbQpa.so.6 => /venv/PyQt6/Qt6/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007f0e0c000000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007f0e0bf00000)
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibEGL.so.1 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0e0c200000)
"""


def free_display_number() -> int:
    """A display number where no X server listens (neither socket nor lock file)."""
    for n in range(90, 999):
        if not (Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists()) \
                and not pc.display_reachable(pc.XDisplay(f":{n}", "", n), timeout_s=0.2):
            return n
    pytest.skip("no free X display number")


def no_missing_libraries(monkeypatch) -> None:
    monkeypatch.setattr(pc, "missing_libraries", lambda plugin, timeout_s=5.0: [])


# -- ldd output -> packages ---------------------------------------------------------------------
def test_parse_ldd_lists_each_missing_library_once_in_order() -> None:
    assert pc.parse_ldd(LDD_OUTPUT) == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxkbcommon-x11.so.0",
                                        "libEGL.so.1"]
    assert pc.parse_ldd("\tnot a dynamic executable\n") == []


@pytest.mark.parametrize("soname, debian, fedora", [
    ("libxcb-cursor.so.0", "libxcb-cursor0", "xcb-util-cursor"),
    ("libxcb-icccm.so.4", "libxcb-icccm4", "xcb-util-wm"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0", "libxkbcommon-x11"),
    ("libEGL.so.1", "libegl1", "libglvnd-egl"),
    ("libfoo.so.3", "libfoo3", "'libfoo.so.3()(64bit)'"),  # Debian's rule; dnf installs by "provides"
    ("libbar2.so.1.4", "libbar2-1", "'libbar2.so.1.4()(64bit)'"),  # a name ending in a digit takes a hyphen
])
def test_library_to_package(soname, debian, fedora) -> None:
    assert pc.debian_package(soname) == debian
    assert pc.fedora_package(soname) == fedora


def test_every_listed_debian_package_comes_from_the_table() -> None:
    known = {deb for deb, _ in pc.PACKAGES.values()}
    assert set(pc.XCB_DEBIAN_PACKAGES) <= known


def test_missing_libraries_message_is_one_line_with_both_install_commands() -> None:
    msg = pc.missing_libraries_message("xcb", pc.parse_ldd(LDD_OUTPUT))
    assert "\n" not in msg
    assert "libxcb-icccm.so.4" in msg
    assert "sudo apt-get install -y libxcb-cursor0 libxcb-icccm4 libxkbcommon-x11-0 libegl1 (Debian/Ubuntu)" in msg
    assert "sudo dnf install -y xcb-util-cursor xcb-util-wm libxkbcommon-x11 libglvnd-egl (Fedora)" in msg
    assert "QT_QPA_PLATFORM=offscreen" in msg


def test_same_package_is_named_once() -> None:
    msg = pc.missing_libraries_message("xcb", ["libxcb-randr.so.0", "libxcb-shape.so.0"])
    assert "dnf install -y libxcb (Fedora)" in msg


# -- DISPLAY ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, host, number", [
    (":0", "", 0), (":1.0", "", 1), ("localhost:10.0", "localhost", 10), ("unix:3", "unix", 3),
    ("tcp/example.org:2", "example.org", 2), ("[::1]:0", "::1", 0),
])
def test_parse_display(value, host, number) -> None:
    d = pc.parse_display(value)
    assert d is not None and (d.host, d.number) == (host, number)


@pytest.mark.parametrize("value", [None, "", "garbage", ":x", "host:"])
def test_parse_display_rejects(value) -> None:
    assert pc.parse_display(value) is None


def test_where_the_x_server_should_listen() -> None:
    assert pc.parse_display(":7").where() == "/tmp/.X11-unix/X7"
    assert pc.parse_display("unix:7").local
    assert pc.parse_display("remote:2.0").where() == "remote:6002 (TCP)"


def test_display_reachable_over_tcp() -> None:
    with socket.socket() as server:
        for n in range(150, 250):
            try:
                server.bind(("127.0.0.1", 6000 + n))
                break
            except OSError:
                continue
        else:
            pytest.skip("no free port in 6150..6249")
        server.listen(1)
        assert pc.display_reachable(pc.parse_display(f"127.0.0.1:{n}"))
    assert not pc.display_reachable(pc.parse_display(f"127.0.0.1:{n}"), timeout_s=0.5)


def test_unreachable_display_message_names_display_and_xvfb() -> None:
    msg = pc.unreachable_display_message(pc.parse_display(":99"), ":99")
    assert "\n" not in msg and "DISPLAY=:99" in msg and "/tmp/.X11-unix/X99" in msg
    assert "sudo apt-get install -y xvfb" in msg and "sudo dnf install -y xorg-x11-server-Xvfb" in msg
    assert "DISPLAY is not set" in pc.unreachable_display_message(None, None)
    assert "'nonsense' is not an X display" in pc.unreachable_display_message(None, "nonsense")


# -- which platform, and whether to check -------------------------------------------------------
@pytest.mark.parametrize("env, names", [
    ({"QT_QPA_PLATFORM": "xcb"}, ["xcb"]),
    ({"QT_QPA_PLATFORM": "xcb:nomitshm"}, ["xcb"]),
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, ["wayland", "xcb"]),
    ({"DISPLAY": ":0"}, ["xcb"]),
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}, ["wayland", "xcb"]),
    ({"WAYLAND_DISPLAY": "wayland-0"}, ["wayland"]),
])
def test_requested_platforms(env, names) -> None:
    assert pc.requested_platforms(env) == names


def test_platforms_without_a_window_are_not_checked() -> None:
    assert not pc.needs_check({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":99"}, "linux")
    assert not pc.needs_check({"QT_QPA_PLATFORM": "minimal"}, "linux")
    assert not pc.needs_check({"DISPLAY": ":0"}, "win32")
    assert pc.needs_check({"DISPLAY": ":0"}, "linux")
    assert pc.check({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":99"}) is None


# -- the check itself ---------------------------------------------------------------------------
def test_check_reports_an_unreachable_display(monkeypatch) -> None:
    no_missing_libraries(monkeypatch)
    n = free_display_number()
    msg = pc.check({"DISPLAY": f":{n}", "QT_QPA_PLATFORM": "xcb"})
    assert msg is not None and f"DISPLAY=:{n}" in msg and "\n" not in msg


def test_check_reports_missing_libraries_first(monkeypatch) -> None:
    monkeypatch.setattr(pc, "plugin_file", lambda name: Path(f"/qt/libq{name}.so"))
    monkeypatch.setattr(pc, "missing_libraries", lambda plugin, timeout_s=5.0: ["libxcb-icccm.so.4"])
    n = free_display_number()
    msg = pc.check({"DISPLAY": f":{n}"})
    assert msg.startswith("Cannot open a window: Qt's xcb platform plugin needs system libraries")
    assert "apt-get install -y libxcb-icccm4" in msg and f"also no X server answers on DISPLAY=:{n}" in msg


def test_check_passes_when_a_wayland_compositor_listens(monkeypatch, tmp_path) -> None:
    no_missing_libraries(monkeypatch)
    path = tmp_path / "wayland-7"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(1)
        env = {"WAYLAND_DISPLAY": "wayland-7", "XDG_RUNTIME_DIR": str(tmp_path), "QT_QPA_PLATFORM": "wayland"}
        assert pc.check(env) is None
        n = free_display_number()  # wayland first, xcb fallback: one platform that works is enough
        assert pc.check({**env, "QT_QPA_PLATFORM": "wayland;xcb", "DISPLAY": f":{n}"}) is None
    assert "no Wayland compositor answers" in pc.check(env)


def test_check_never_raises(monkeypatch) -> None:
    def broken(name):
        raise RuntimeError("boom")

    monkeypatch.setattr(pc, "plugin_file", broken)
    assert pc.check({"DISPLAY": ":0"}) is None


def test_fatal_message_without_a_static_diagnosis(monkeypatch) -> None:
    monkeypatch.setattr(pc, "check", lambda env=None: None)
    env = {"DISPLAY": ":5"}
    auth = pc.fatal_message(["could not connect to display :5", "no Qt platform plugin could be initialized"], env)
    assert "DISPLAY=:5 refused the connection" in auth and "XAUTHORITY" in auth
    other = pc.fatal_message(['Could not load the Qt platform plugin "xcb" in "" even though it was found.'], env)
    assert "QT_DEBUG_PLUGINS=1" in other and "\n" not in other


# -- end to end, in child processes ---------------------------------------------------------------
def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "DISPLAY")}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True,
                          timeout=120)


def test_python_m_app_without_an_x_server_says_one_line_and_exits_2() -> None:
    n = free_display_number()
    out = _run(["-m", "app", "--quit-after", "1"], {"DISPLAY": f":{n}", "QT_QPA_PLATFORM": "xcb"})
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Cannot open a window:"), out.stderr
    assert f"DISPLAY=:{n}" in lines[0] and "Traceback" not in out.stderr  # (missing libraries are named first)


def test_qt_fatal_platform_error_becomes_one_line() -> None:
    """The safety net alone (static check bypassed): Qt's abort turns into exit 2 and one line."""
    n = free_display_number()
    code = ("import sys\nfrom PyQt6.QtWidgets import QApplication\n"
            "from app.viewer.platform_check import guard_qt_start\n"
            "guard_qt_start(lambda: QApplication(sys.argv[:1]))\nprint('started')\n")
    out = _run(["-c", code], {"DISPLAY": f":{n}", "QT_QPA_PLATFORM": "xcb"})
    assert out.returncode == 2 and "started" not in out.stdout, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Cannot open a window:"), out.stderr
    assert "Aborted" not in out.stderr and "Traceback" not in out.stderr


def test_guard_replays_what_was_said_when_qt_starts() -> None:
    code = ("import os, sys\nfrom PyQt6.QtCore import qWarning\nfrom PyQt6.QtGui import QGuiApplication\n"
            "from app.viewer.platform_check import guard_qt_start\n"
            "def make():\n    os.write(2, b'raw stderr\\n')\n    qWarning('a qt warning')\n"
            "    return QGuiApplication(sys.argv[:1])\n"
            "app = guard_qt_start(make)\nprint(app.platformName())\n")
    out = _run(["-c", code], {"QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "offscreen"
    assert "raw stderr" in out.stderr and "a qt warning" in out.stderr


def test_check_display_option() -> None:
    ok = _run(["-m", "app", "view", "--check-display"], {"QT_QPA_PLATFORM": "offscreen"})
    assert ok.returncode == 0 and "display OK" in ok.stdout and "offscreen" in ok.stdout, ok.stderr
    n = free_display_number()
    bad = _run(["-m", "app", "view", "--check-display"], {"DISPLAY": f":{n}"})
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_without_any_display_the_viewer_explains_and_exits_2() -> None:
    out = _run(["-m", "app", "--quit-after", "1"], {})
    assert out.returncode == 2 and "No display found" in out.stderr and "Traceback" not in out.stderr


def test_ci_and_readme_install_the_same_packages() -> None:
    import re

    ci = (ROOT / ".ci" / "run").read_text()
    listed = re.search(r'XCB_PACKAGES="([^"]*)"', ci).group(1).split()
    assert set(listed) == set(pc.XCB_DEBIAN_PACKAGES)
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "sudo apt-get install -y " + " ".join(pc.XCB_DEBIAN_PACKAGES) in readme
