"""The alias history's stack: promote pushes, rollback pops, unrecorded moves are reconciled."""

from __future__ import annotations

from handlers.cli.aliases import record_move, rollback_target


def _entry() -> dict:
    return {"holder": None, "latest_version": None, "stack": [], "history": []}


IDS = ["1", "2", "3"]


def test_rollback_undoes_promotes_in_reverse_order() -> None:
    entry = _entry()
    record_move(entry, "promote", "3", "1", IDS)
    record_move(entry, "promote", "1", "2", IDS)
    assert rollback_target(entry, "2", IDS) == ("1", "recorded history")
    record_move(entry, "rollback", "2", "1", IDS)
    assert rollback_target(entry, "1", IDS) == ("3", "recorded history")
    record_move(entry, "rollback", "1", "3", IDS)
    assert entry["stack"] == []
    assert rollback_target(entry, "3", IDS) == ("2", "previous version (no recorded history)")


def test_new_uploads_that_took_the_alias_are_rolled_back_one_at_a_time() -> None:
    entry = _entry()
    record_move(entry, "promote", "3", "1", IDS)  # operator pins v1; v4 and v5 uploaded later
    ids = [*IDS, "4", "5"]
    assert rollback_target(entry, "4", ids) == ("1", "recorded history")
    assert rollback_target(entry, "5", ids) == ("4", "recorded history")
    record_move(entry, "rollback", "5", "4", ids)
    assert entry["holder"] == "4" and entry["latest_version"] == "5"
    assert rollback_target(entry, "4", ids) == ("1", "recorded history")
    assert [h["action"] for h in entry["history"]] == ["promote", "observed", "rollback"]


def test_deleted_versions_are_skipped_and_the_oldest_has_nowhere_to_go() -> None:
    entry = _entry()
    record_move(entry, "promote", "1", "2", IDS)
    record_move(entry, "promote", "2", "3", IDS)
    assert rollback_target(entry, "3", ["1", "3"]) == ("1", "recorded history")  # v2 deleted
    assert rollback_target(_entry(), "1", IDS) == (None, "")


def test_an_unheld_custom_alias_pushes_nothing() -> None:
    entry = _entry()
    record_move(entry, "promote", None, "2", IDS)
    assert entry["stack"] == [] and entry["holder"] == "2"
