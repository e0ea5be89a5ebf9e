"""Can Qt open a window here? Checked before the QApplication exists.

On a fresh Linux machine Qt aborts (exit status 134) with "Could not load the Qt platform plugin
xcb" when system libraries are missing, or when ``DISPLAY`` names a display where no X server runs.
This module turns both into ONE line that names the missing libraries (as Debian and Fedora
packages, with the exact install command) or the unreachable display, and exit status 2:

- :func:`check` is the fast static check (``ldd`` on Qt's platform plugin, a connect to the X or
  Wayland socket; a few tens of ms). It never raises: when it cannot tell, it says nothing.
- :func:`guard_qt_start` creates the QApplication with a Qt message handler that turns Qt's fatal
  platform error into the same one line (the safety net for what the static check cannot see, such
  as a refused X authorization).
- :func:`probe` starts a throwaway ``QGuiApplication`` in a child process: the full check behind
  ``python -m app view --check-display``.

Platforms that open no window (``offscreen``, ``minimal``, ...) are never checked.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, TypeVar

T = TypeVar("T")

EXIT_NO_DISPLAY = 2
#: Platforms that need no display server: the check is skipped for them.
NON_WINDOW_PLATFORMS = frozenset({"offscreen", "minimal", "minimalegl", "vnc", "linuxfb", "eglfs", "vkkhrdisplay"})
HEADLESS_HINT = "headless: QT_QPA_PLATFORM=offscreen python -m app"

#: Debian/Ubuntu and Fedora packages of the libraries Qt's xcb and wayland plugins load.
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor"),
    "libwayland-egl.so.1": ("libwayland-egl1", "libwayland-egl"),
}
#: Everything the shipped PyQt6 needs for a real X11 window (README "System packages", .ci/run).
XCB_DEBIAN_PACKAGES = ("libxcb-cursor0", "libxcb-icccm4", "libxcb-image0", "libxcb-keysyms1", "libxcb-randr0",
                       "libxcb-render-util0", "libxcb-shape0", "libxcb-xinerama0", "libxcb-xkb1",
                       "libxkbcommon-x11-0", "libegl1")
_SONAME = re.compile(r"^(?P<stem>.+?)\.so(?:\.(?P<version>[0-9][0-9.]*))?$")
_LDD_MISSING = re.compile(r"^\s*(\S+)\s*=>\s*not found\s*$")


# -- pure parts -------------------------------------------------------------------------------
def parse_ldd(text: str) -> list[str]:
    """The libraries ``ldd`` reports as ``not found``, once each, in order."""
    missing: list[str] = []
    for line in text.splitlines():
        m = _LDD_MISSING.match(line)
        if m and m.group(1) not in missing:
            missing.append(m.group(1))
    return missing


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package of a library (Debian's naming rule when it is not in the table)."""
    if soname in PACKAGES:
        return PACKAGES[soname][0]
    m = _SONAME.match(soname)
    if m is None or not m.group("version"):
        return soname.lower()
    stem, major = m.group("stem").lower(), m.group("version").split(".")[0]
    return f"{stem}-{major}" if stem[-1].isdigit() else f"{stem}{major}"


def fedora_package(soname: str) -> str:
    """The Fedora package of a library; dnf also installs by what a package provides when unknown."""
    if soname in PACKAGES:
        return PACKAGES[soname][1]
    return f"'{soname}()(64bit)'"


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))


def install_commands(debian: list[str], fedora: list[str]) -> str:
    """The exact install lines for Debian/Ubuntu and Fedora."""
    return (f"sudo apt-get install -y {' '.join(_unique(debian))} (Debian/Ubuntu) "
            f"or sudo dnf install -y {' '.join(_unique(fedora))} (Fedora)")


def missing_libraries_message(platform: str, sonames: list[str], also: str = "") -> str:
    """One line: which libraries the platform plugin lacks, and how to install them (``also``: a second problem)."""
    debian = [debian_package(s) for s in sonames]
    fedora = [fedora_package(s) for s in sonames]
    tail = f"; also {also}" if also else ""
    return (f"Cannot open a window: Qt's {platform} platform plugin needs system libraries that are missing "
            f"({', '.join(sonames)}); install them: {install_commands(debian, fedora)}{tail}; {HEADLESS_HINT}")


@dataclass(frozen=True)
class XDisplay:
    """A parsed X ``DISPLAY``: ``[tcp/][host]:number[.screen]``."""

    text: str
    host: str
    number: int

    @property
    def local(self) -> bool:
        return self.host in ("", "unix")

    @property
    def socket_path(self) -> str:
        return f"/tmp/.X11-unix/X{self.number}"

    def where(self) -> str:
        """Where the X server should listen, in words."""
        return self.socket_path if self.local else f"{self.host}:{6000 + self.number} (TCP)"


def parse_display(value: str | None) -> XDisplay | None:
    """Parse ``DISPLAY``; None when it is empty or not of the form ``[host]:number[.screen]``."""
    text = (value or "").strip()
    host, sep, rest = text.rpartition(":")
    if not sep:
        return None
    number = rest.split(".", 1)[0]
    if not number.isdigit():
        return None
    if host.startswith("tcp/"):
        host = host[len("tcp/"):]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return XDisplay(text, host, int(number))


def display_problem(display: XDisplay | None, value: str | None) -> str:
    """What is wrong with the X display, in a few words."""
    if display is None:
        return f"DISPLAY={value!r} is not an X display (expected e.g. :0)" if value else "DISPLAY is not set"
    return f"no X server answers on DISPLAY={display.text} (nothing listens on {display.where()})"


def unreachable_display_message(display: XDisplay | None, value: str | None) -> str:
    """One line: the X display is missing or nobody listens there, and what to do."""
    xvfb = install_commands(["xvfb"], ["xorg-x11-server-Xvfb"])
    return (f"Cannot open a window: {display_problem(display, value)}; start the X session or fix DISPLAY, "
            f"or use a virtual screen (Xvfb :99 & then DISPLAY=:99; {xvfb}); {HEADLESS_HINT}")


def unreachable_wayland_message(path: str) -> str:
    return (f"Cannot open a window: no Wayland compositor answers on {path} (WAYLAND_DISPLAY); "
            f"log into a desktop session or set DISPLAY for X11; {HEADLESS_HINT}")


def requested_platforms(env: Mapping[str, str]) -> list[str]:
    """The Qt platform names that will be tried, first choice first (``QT_QPA_PLATFORM`` or Qt's default)."""
    value = env.get("QT_QPA_PLATFORM", "").strip()
    if value:
        return [p.split(":", 1)[0].strip().lower() for p in value.split(";") if p.strip()]
    names = []
    if env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE", "").lower() == "wayland":
        names.append("wayland")
    if env.get("DISPLAY"):
        names.append("xcb")
    if env.get("WAYLAND_DISPLAY") and "wayland" not in names:
        names.append("wayland")
    return names or ["xcb"]


def needs_check(env: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Only Linux/BSD window platforms are checked; offscreen & co. and Windows/macOS never."""
    if platform in ("win32", "darwin"):
        return False
    return not any(p in NON_WINDOW_PLATFORMS for p in requested_platforms(env))


# -- probing the machine ----------------------------------------------------------------------
def plugin_file(name: str) -> Path | None:
    """Qt's platform plugin library ``libq<name>.so``, or None when it cannot be found."""
    try:
        from PyQt6.QtCore import QLibraryInfo

        folder = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    except Exception:  # no PyQt6: the import error is reported by the viewer itself
        return None
    path = folder / f"libq{name}.so"
    return path if path.is_file() else None


def missing_libraries(plugin: Path, timeout_s: float = 5.0) -> list[str] | None:
    """The libraries ``ldd`` cannot find for ``plugin``; None when ``ldd`` is not there or fails."""
    try:
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=timeout_s,
                             env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_ldd(out.stdout + out.stderr)


def _connects(family: int, address, timeout_s: float) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(address)
        return True
    except OSError:
        return False


def display_reachable(display: XDisplay, timeout_s: float = 1.0) -> bool:
    """True when something accepts a connection where the X server of ``display`` listens."""
    if display.local:
        if _connects(socket.AF_UNIX, display.socket_path, timeout_s):
            return True
        return sys.platform.startswith("linux") and _connects(socket.AF_UNIX, "\0" + display.socket_path, timeout_s)
    try:
        infos = socket.getaddrinfo(display.host, 6000 + display.number, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(_connects(family, addr, timeout_s) for family, _, _, _, addr in infos)


def wayland_socket(env: Mapping[str, str]) -> str | None:
    name = env.get("WAYLAND_DISPLAY", "")
    if not name:
        return None
    return name if name.startswith("/") else os.path.join(env.get("XDG_RUNTIME_DIR", ""), name)


def check_platform(name: str, env: Mapping[str, str]) -> str | None:
    """One line saying why ``name`` cannot open a window here, or None when nothing is known wrong."""
    plugin = plugin_file(name) if name in ("xcb", "wayland") else None
    missing = missing_libraries(plugin) if plugin is not None else None
    if name == "xcb":
        display = parse_display(env.get("DISPLAY"))
        if display is None or not display_reachable(display):
            if missing:  # both: the libraries first (fixing the display alone would not help)
                return missing_libraries_message(name, missing, also=display_problem(display, env.get("DISPLAY")))
            return unreachable_display_message(display, env.get("DISPLAY"))
    elif name == "wayland":
        path = wayland_socket(env)
        if not missing and (path is None or not _connects(socket.AF_UNIX, path, 1.0)):
            return unreachable_wayland_message(path or "$WAYLAND_DISPLAY (not set)")
    return missing_libraries_message(name, missing) if missing else None


def check(env: Mapping[str, str] | None = None) -> str | None:
    """The fast check: None when Qt should open a window (or the platform opens none), else one line.

    When several platforms are requested (``wayland;xcb``), one that passes is enough; the first
    one's problem is reported otherwise. Never raises.
    """
    env = os.environ if env is None else env
    try:
        if not needs_check(env):
            return None
        problems = [check_platform(name, env) for name in requested_platforms(env)]
        if any(p is None for p in problems):
            return None
        return problems[0]
    except Exception:  # a check must never be the reason the viewer does not start
        return None


# -- the safety net around QApplication -------------------------------------------------------
def fatal_message(messages: list[str], env: Mapping[str, str]) -> str:
    """One line for Qt's fatal platform error: the static diagnosis, or Qt's own words."""
    known = check(env)
    if known is not None:
        return known
    platform = ", ".join(requested_platforms(env))
    details = [m.strip().splitlines()[0] for m in messages if m.strip()]
    if any("could not connect to display" in d.lower() for d in details):
        return (f"Cannot open a window: the X server on DISPLAY={env.get('DISPLAY', '')} refused the connection "
                f"(X authorization: check XAUTHORITY, or run xhost +SI:localuser:$USER in the desktop session); "
                f"{HEADLESS_HINT}")
    said = " / ".join(d for d in details if "xcb-cursor0" not in d)[:400] or "no details"
    return (f"Cannot open a window: Qt could not start its platform plugin ({platform}): {said}; "
            f"run with QT_DEBUG_PLUGINS=1 for details; {HEADLESS_HINT}")


def guard_qt_start(create: Callable[[], T], env: Mapping[str, str] | None = None) -> T:
    """Call ``create()`` (which makes the QApplication); Qt's fatal platform error exits 2 with one line.

    Qt's messages (and anything written to stderr) while the application starts are held back and
    printed afterwards, so a failure shows our single line instead of Qt's several. The previous
    message handler is restored.
    """
    from PyQt6.QtCore import QtMsgType, qInstallMessageHandler

    env = os.environ if env is None else env
    held: list[tuple[str, str]] = []  # (category, message): Qt's context object lives only during the call

    def handler(mode, context, message) -> None:
        if mode != QtMsgType.QtFatalMsg:
            held.append((getattr(context, "category", None) or "default", message))
            return
        _restore_stderr()
        line = fatal_message([m for _, m in held] + [message], env)
        print(line, file=sys.stderr, flush=True)
        os._exit(EXIT_NO_DISPLAY)  # Qt aborts after a fatal message returns: leave first, cleanly

    previous = qInstallMessageHandler(handler)
    try:
        with _stderr_held() as replay:  # libxcb writes its own complaints straight to stderr
            result = create()
    finally:
        qInstallMessageHandler(previous)
    replay()
    for category, message in held:  # what Qt said on the way, now that it started
        print(message if category == "default" else f"{category}: {message}", file=sys.stderr)
    return result


_saved_stderr: list[int] = []


def _restore_stderr() -> None:
    """Put the real stderr (file descriptor 2) back, if :func:`_stderr_held` diverted it."""
    while _saved_stderr:
        fd = _saved_stderr.pop()
        os.dup2(fd, 2)
        os.close(fd)


@contextlib.contextmanager
def _stderr_held():
    """Divert file descriptor 2 into a temporary file; yields a function that writes it out afterwards."""
    held = tempfile.TemporaryFile()
    try:
        sys.stderr.flush()
        _saved_stderr.append(os.dup(2))
        os.dup2(held.fileno(), 2)
    except OSError:  # no usable stderr: nothing to hold back
        _restore_stderr()
    try:
        def replay() -> None:
            held.seek(0)
            text = held.read().decode(errors="replace")
            held.close()
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()

        yield replay
    finally:
        _restore_stderr()


# -- the full check in a child process --------------------------------------------------------
PROBE_CODE = (
    "import sys\n"
    "from PyQt6.QtGui import QGuiApplication\n"
    "app = QGuiApplication(sys.argv[:1])\n"
    "print(QGuiApplication.platformName())\n"
)


def probe(env: Mapping[str, str] | None = None, timeout_s: float = 20.0) -> tuple[bool, str]:
    """Start a QGuiApplication in a child process: (True, platform name) or (False, one line why not)."""
    env = dict(os.environ if env is None else env)
    known = check(env)
    if known is not None:
        return False, known
    if getattr(sys, "frozen", False):  # a bundled executable cannot run ``-c``: the static check only
        return True, ", ".join(requested_platforms(env)) + " (static check)"
    try:
        out = subprocess.run([sys.executable, "-c", PROBE_CODE], capture_output=True, text=True,
                             timeout=timeout_s, env={**env, "QT_DEBUG_PLUGINS": "1"})
    except subprocess.TimeoutExpired:
        return False, f"Cannot open a window: Qt did not start within {timeout_s:.0f} s (display hung?); {HEADLESS_HINT}"
    except OSError as exc:
        return False, f"Cannot open a window: could not start {sys.executable}: {exc}"
    if out.returncode == 0:
        return True, out.stdout.strip() or "unknown"
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    return False, fatal_message(_probe_details(lines), env)


def _probe_details(lines: list[str]) -> list[str]:
    """From a QT_DEBUG_PLUGINS log, the lines that say why: load errors, connect errors, the fatal one."""
    keys = ("cannot load library", "could not connect", "could not load", "failed to start", "error")
    picked = [ln for ln in lines if any(k in ln.lower() for k in keys)]
    return picked[-4:] or lines[-2:]
