import json
import logging

import pytest

from indisync.errors import StateError
from indisync.sequence.plan import MasterProgress
from indisync.sequence.rotation import FilterRotation
from indisync.sequence.state_store import StateStore, load_master_progress, save_master_progress


def test_round_trip_and_sections_kept_apart(tmp_path):
    path = tmp_path / "sub" / "state.json"
    store = StateStore(path)
    assert store.get("master") is None
    save_master_progress(store, MasterProgress(batch=3, frame=2, exposure_id=12, plan="abc"))
    store.put("other", {"x": 1})
    again = StateStore(path)
    assert load_master_progress(again) == MasterProgress(batch=3, frame=2, exposure_id=12, plan="abc")
    assert again.get("other") == {"x": 1}
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], "no temp files left behind"


def test_missing_file_is_a_logged_fresh_start(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        assert load_master_progress(StateStore(tmp_path / "none.json")) == MasterProgress()
    assert "starting from the beginning" in caplog.text


def test_corrupt_file_without_backup_is_a_clear_error(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "sections": {"rotation": {"index": 2')  # torn write / bad edit
    with pytest.raises(StateError) as info:
        StateStore(path)
    text = str(info.value)
    assert str(path) in text and "not valid JSON" in text and "move it aside" in text
    assert path.exists(), "the corrupt file must be left for the user to inspect"


def test_corrupt_file_falls_back_to_backup_with_warning(tmp_path, caplog):
    path = tmp_path / "slave.json"
    rotation = FilterRotation(["R", "G", "B"], StateStore(path))
    for _ in range(4):  # R G B R taken; the file says next G, its backup (one write behind) next R
        rotation.next()
    path.write_text("garbage")
    with caplog.at_level(logging.WARNING):
        restored = FilterRotation(["R", "G", "B"], StateStore(path))
    assert restored.peek() == "R"  # the backup is one write behind: frame 4 (R) is taken again
    assert "corrupt" in caplog.text and "backup" in caplog.text
    assert (tmp_path / "slave.json.corrupt").read_text() == "garbage"
    assert json.loads(path.read_text())["sections"]["rotation"]["index"] == 0  # state rewritten


def test_wrong_version_and_bad_progress_values_are_errors(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 99, "sections": {}}))
    with pytest.raises(StateError, match="version 99"):
        StateStore(path)
    path.write_text(json.dumps({"version": 1, "sections": {"master": {"batch": 0, "frame": 1}}}))
    with pytest.raises(StateError, match="out of range"):
        load_master_progress(StateStore(path))
    path.write_text(json.dumps({"version": 1, "sections": {"master": {"frame": 1}}}))
    with pytest.raises(StateError, match="missing"):
        load_master_progress(StateStore(path))
