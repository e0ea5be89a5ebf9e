"""The viewer's main window (shell: hosts the live view; the pipeline fills it in)."""

from __future__ import annotations

import argparse
import sys

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import QApplication, QLabel, QMainWindow


class MainWindow(QMainWindow):
    """Top-level window of the scanner viewer."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("cardiac-rt - real-time cardiac segmentation")
        self.resize(1100, 720)
        self.placeholder = QLabel("No model / no source yet.\nThe live view appears here once a source is open.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setCentralWidget(self.placeholder)
        self.statusBar().showMessage("Ready")


def launch(args: argparse.Namespace) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("cardiac-rt")
    app.setOrganizationName("cardiac-rt")
    window = MainWindow()
    window.show()
    if args.quit_after is not None:
        QTimer.singleShot(int(args.quit_after * 1000), app.quit)
    return app.exec()
