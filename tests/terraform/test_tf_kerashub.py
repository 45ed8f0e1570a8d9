"""Terraform's `keras_hub` input: the function gets KERAS_HUB=true and its build installs KerasHub's
pins (requirements-kerashub.txt appended to the archived requirements.txt); off by default."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from handlers.settings import Settings
from tests.terraform import tfconsole, tfparse
from tests.terraform.tfparse import TF_DIR

pytestmark = pytest.mark.skipif(
    shutil.which("terraform") is None, reason="terraform binary not on PATH: not evaluated"
)
ROOT = TF_DIR.parent


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tfconsole.make_probe(tmp_path_factory.mktemp("tf-kerashub"))


def test_keras_hub_appends_the_extra_s_pins_to_the_archived_requirements(probe: Path) -> None:
    assert tfconsole.value(probe, "local.requirements_files") == ["requirements.txt"]
    files = tfconsole.value(probe, "local.requirements_files", keras_hub=True)
    assert files == ["requirements.txt", "requirements-kerashub.txt"]
    assert all((ROOT / f).is_file() for f in files)
    assert "keras-hub==" in (ROOT / "requirements-kerashub.txt").read_text()
    archive = tfparse.load_module()["data"]["archive_file"]["source"]
    (sources,) = [d["source"] for d in archive["dynamic"] if "source" in d]
    content = tfparse.one(sources["content"])["content"]
    assert "local.requirements_files" in content and 'source.value == "requirements.txt"' in content


def test_keras_hub_sets_the_setting(probe: Path) -> None:
    env = tfconsole.value(probe, "local.environment_variables", keras_hub=True)
    assert env["KERAS_HUB"] == "true"
    assert "KERAS_HUB" not in tfconsole.value(probe, "local.environment_variables")
    assert Settings.from_env({"GOOGLE_CLOUD_PROJECT": "my-project"}).keras_hub is False
