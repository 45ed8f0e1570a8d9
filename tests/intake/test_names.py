"""The canonical-name rule and the only way a download creates a local file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from handlers.errors import Rejected
from handlers.intake import names


@pytest.mark.parametrize(
    "name",
    [
        "saved_model.pb",
        "variables/variables.index",
        "variables/variables.data-00000-of-00001",
        "assets/vocab.txt",
        "assets/nested/deeper/vocab.txt",
        "assets.extra/tf_serving_warmup_requests",
        "assets/caf\u00e9.txt",  # NFC
        "assets/" + "x" * 255,
        "model.keras",
        "..keras",  # a file name that starts with dots is not a '..' segment
    ],
)
def test_canonical_names_are_accepted(name: str) -> None:
    assert names.name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("variables/../saved_model.pb", "'..'"),
        ("variables/../../../../tmp/x.pth", "'..'"),
        ("../saved_model.pb", "'..'"),
        ("./saved_model.pb", "'.'"),
        ("variables/./variables.index", "'.'"),
        ("variables//variables.index", "empty"),
        ("/saved_model.pb", "empty"),
        ("assets/", "empty"),
        ("assets\\..\\saved_model.pb", "backslash"),
        ("assets/a\x00b", "control or NUL"),
        ("assets/a\nb", "control or NUL"),
        ("assets/a\x7fb", "control or NUL"),
        ("assets/a\x85b", "control or NUL"),  # C1 (NEXT LINE)
        ("assets/cafe\u0301.txt", "NFC"),  # NFD: 'e' + combining acute
        ("assets/" + "x" * 256, "255 bytes"),
        ("assets/\ud800", "surrogate"),
    ],
)
def test_non_canonical_names_are_refused_with_a_reason(name: str, why: str) -> None:
    problem = names.name_problem(name)
    assert problem is not None and why in problem


def test_check_names_rejects_a_bad_name_before_anything_happens() -> None:
    with pytest.raises(Rejected) as err:
        names.check_names(["saved_model.pb", "variables/../saved_model.pb"], "gs://b/m/")
    assert err.value.code == names.BAD_NAME
    assert "variables/../saved_model.pb" in str(err.value) and "not downloaded" in str(err.value)


def test_check_names_rejects_a_file_that_another_member_needs_as_a_folder() -> None:
    with pytest.raises(Rejected) as err:
        names.check_names(["assets/a", "assets/a/b", "saved_model.pb"], "gs://b/m/")
    assert err.value.code == names.COLLISION


def test_check_names_rejects_two_members_with_one_path() -> None:
    with pytest.raises(Rejected) as err:
        names.check_names(["saved_model.pb", "saved_model.pb"], "gs://b/m/")
    assert err.value.code == names.COLLISION


def test_local_paths_are_proven_to_lie_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert names.local_path(root, "variables/variables.index") == (
        root.resolve() / "variables" / "variables.index"
    )
    (root / "escape").symlink_to(tmp_path)  # only reachable if someone planted it
    with pytest.raises(Rejected):
        names.local_path(root, "escape/x")  # resolves outside root
    with pytest.raises(Rejected):
        names.local_path(root, "a/../../x")


def test_create_file_makes_nested_files_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with names.create_file(root, "variables/variables.index") as handle:
        handle.write(b"index")
    with names.create_file(root, "variables/variables.data-00000-of-00001") as handle:
        handle.write(b"data")
    assert (root / "variables" / "variables.index").read_bytes() == b"index"
    assert oct((root / "variables").stat().st_mode & 0o777) == oct(0o700)
    assert oct((root / "variables" / "variables.index").stat().st_mode & 0o777) == oct(0o600)


def test_create_file_never_overwrites_or_follows_what_exists(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "variables").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "saved_model.pb").write_bytes(b"first")
    with pytest.raises(FileExistsError):
        names.create_file(root, "saved_model.pb")
    assert (root / "saved_model.pb").read_bytes() == b"first"
    # Symlinks planted on the way (an upload cannot plant one; defence in depth): one that
    # leads outside fails the resolve check, one that stays inside is not followed either.
    (root / "variables" / "variables.index").symlink_to(outside / "target")
    with pytest.raises(Rejected):
        names.create_file(root, "variables/variables.index")
    inside = root / "inside"
    inside.mkdir()
    (root / "variables" / "other").symlink_to(inside / "target")
    with pytest.raises(FileExistsError):  # O_EXCL | O_NOFOLLOW: the link itself exists
        names.create_file(root, "variables/other")
    (root / "assets").symlink_to(inside)
    with pytest.raises(OSError):  # entered with O_NOFOLLOW | O_DIRECTORY: ELOOP
        names.create_file(root, "assets/vocab.txt")
    assert os.listdir(outside) == [] and os.listdir(inside) == []
