from pathlib import Path

import pytest

from tests.app.engine.tiny_models import write_cine_model, write_echo_models


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A models/ folder with a tiny echo seg+QC pair and a tiny cine clip model."""
    folder = tmp_path_factory.mktemp("models")
    write_echo_models(folder)
    write_cine_model(folder)
    return folder
