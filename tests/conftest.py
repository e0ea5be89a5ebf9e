import os

# GUI tests run offscreen: no display needed, in CI or here.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
