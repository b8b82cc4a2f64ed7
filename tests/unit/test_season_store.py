"""The season database (indisync.season.store): schema versions and migrations, refusals, counts
by grade, duplicates, grades by file name, restarts and concurrent writers. A temporary file each;
a fixed clock (no dependence on the time of day)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading

import pytest

from indisync.errors import SeasonError
from indisync.season import store as store_module
from indisync.season.model import ACCEPTED, PENDING, REJECTED, Constraints, PlanLine, Project, Target
from indisync.season.store import DB_NAME, FrameRow, SeasonStore, db_path

T0 = 1_800_000_000.0  # a fixed epoch: nothing here reads the clock


def clock():
    return T0


def m51(**changes) -> Target:
    fields = dict(project="galaxies", name="M51", ra=202.4696, dec=47.1952, pa=10.0, priority=6,
                  start_date="2027-03-01", end_date="2027-05-31",
                  constraints=Constraints(min_altitude=35.0, horizon=((0.0, 20.0), (180.0, 25.0)), before_flip=True),
                  plan=(PlanLine("ota1", "Luminance", 300.0, 3), PlanLine("ota2", "Red", 300.0, 2),
                        PlanLine("ota2", "Green", 300.0, 2, binning=2)))
    fields.update(changes)
    return Target(**fields)


def frame(path: str, node="ota1", target="M51", filter_name="Luminance", grade=ACCEPTED, surplus=False, **kw):
    return FrameRow(node=node, target=target, filter=filter_name, exposure=300.0, path=path, grade=grade,
                    taken_at=T0, surplus=surplus, **kw)


@pytest.fixture
def db(tmp_path):
    return tmp_path / DB_NAME


@pytest.fixture
def store(db):
    with SeasonStore(db, clock=clock) as s:
        yield s


def test_db_path_is_in_the_storage_directory(tmp_path):
    from indisync.config import load_config

    cfg = load_config(data={"storage": {"directory": str(tmp_path / "images")}})
    assert db_path(cfg) == tmp_path / "images" / "indisync.db"


def test_new_database_is_wal_with_foreign_keys_and_the_latest_version(store, db):
    assert store.journal_mode() == "wal"
    assert store.schema_version() == len(store_module.MIGRATIONS)
    with sqlite3.connect(db) as other:  # WAL is a property of the file: another connection sees it
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.add_target(m51())
    with pytest.raises(SeasonError):  # a plan line pointing at no target: the foreign key refuses it
        with store.transaction():
            store._conn.execute("INSERT INTO plan_lines (target_id, position, node, exposure, count) "
                                "VALUES (999, 0, 'ota1', 1, 1)")


def test_older_schema_is_migrated_keeping_its_data(db, monkeypatch):
    # A database written by this version (the older one once the next step below is released) ...
    with SeasonStore(db, clock=clock) as s:
        s.add_target(m51())
        s.record_frame(frame("/img/a.fits"))
    # ... opened by a version with one more step: migrated in place, nothing lost.
    step = ("ALTER TABLE frames ADD COLUMN camera TEXT", "CREATE TABLE extra (x INTEGER)")
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS + [step])
    with SeasonStore(db, clock=clock) as s:
        assert s.schema_version() == len(store_module.MIGRATIONS)
        columns = {row[1] for row in s._conn.execute("PRAGMA table_info(frames)")}
        assert "camera" in columns
        assert s.target("M51") == m51(id=s.target("M51").id)
        assert s.progress(s.target("M51")).get("ota1", "Luminance").accepted == 1
        versions = [row[0] for row in s._conn.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == list(range(1, len(store_module.MIGRATIONS) + 1))


def test_a_failing_migration_leaves_the_old_version_intact(db, monkeypatch):
    with SeasonStore(db, clock=clock) as s:
        s.add_target(m51())
    old = len(store_module.MIGRATIONS)
    bad = ("CREATE TABLE fine (x INTEGER)", "ALTER TABLE no_such_table ADD COLUMN y TEXT")
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS + [bad])
    with pytest.raises(SeasonError) as err:
        SeasonStore(db, clock=clock)
    assert str(db) in str(err.value)
    monkeypatch.undo()
    with SeasonStore(db, clock=clock) as s:  # rolled back as one transaction: the old schema, the old data
        assert s.schema_version() == old
        assert "fine" not in {r[0] for r in s._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert [t.name for t in s.targets()] == ["M51"]


def test_a_hand_built_version_one_file_opens(db):
    # The version-1 schema exactly as an old indisync wrote it, built without the store.
    with sqlite3.connect(db) as raw:
        raw.execute(store_module._SCHEMA_TABLE)
        for statement in store_module.MIGRATIONS[0]:
            raw.execute(statement)
        raw.execute("INSERT INTO schema_version VALUES (1, ?, ?)", (store_module.APP, T0))
        raw.execute("INSERT INTO projects (name) VALUES ('p')")
        raw.execute("INSERT INTO targets (project_id, name, ra, dec) VALUES (1, 'NGC 7000', 314.7, 44.3)")
    raw.close()
    with SeasonStore(db, clock=clock) as s:
        assert [t.name for t in s.targets()] == ["NGC 7000"]
        assert s.journal_mode() == "wal"


def test_a_newer_database_is_refused_with_the_fix_and_left_untouched(db):
    with SeasonStore(db, clock=clock) as s:
        s.add_target(m51())
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO schema_version VALUES (99, ?, ?)", (store_module.APP, T0))
    raw.close()
    before = db.read_bytes()
    with pytest.raises(SeasonError) as err:
        SeasonStore(db, clock=clock)
    message = str(err.value)
    assert str(db) in message and "version 99" in message and "newer" in message and "Upgrade indisync" in message
    assert db.read_bytes() == before


def test_a_foreign_database_is_refused(db):
    with sqlite3.connect(db) as raw:
        raw.execute("CREATE TABLE photos (id INTEGER)")
    raw.close()
    with pytest.raises(SeasonError) as err:
        SeasonStore(db)
    assert str(db) in str(err.value) and "not an indisync season database" in str(err.value)
    assert "photos" in str(err.value)


def test_a_damaged_file_is_refused_naming_it_and_the_fix(db):
    db.write_bytes(b"this is not sqlite at all\n" * 100)
    with pytest.raises(SeasonError) as err:
        SeasonStore(db)
    message = str(err.value)
    assert str(db) in message and "damaged" in message and "Move it aside" in message


def test_a_missing_file_without_create_is_refused(db):
    with pytest.raises(SeasonError) as err:
        SeasonStore(db, create=False)
    assert str(db) in str(err.value) and "indisync targets" in str(err.value)
    assert not db.exists()


def test_targets_and_projects_round_trip(store):
    stored = store.add_target(m51())
    assert stored.id is not None
    assert store.target("M51") == stored
    assert store.projects() == [Project("galaxies")]  # created on the fly, with defaults
    assert store.target("nope") is None
    store.upsert_project(Project("galaxies", priority=8, description="spring", enabled=False))
    assert store.projects() == [Project("galaxies", 8, "spring", False)]
    assert store.targets(enabled_only=True) == []  # its project is off
    store.add_project(Project("nebulae", 2))
    with pytest.raises(SeasonError, match="project 'nebulae' exists already"):
        store.add_project(Project("nebulae"))


def test_adding_a_target_twice_names_it_and_the_fix(store):
    store.add_target(m51())
    with pytest.raises(SeasonError) as err:
        store.add_target(m51(ra=10.0))
    assert "'M51' exists already" in str(err.value) and "--replace" in str(err.value)
    assert store.target("M51").ra == 202.4696


def test_a_bad_target_is_refused_naming_the_value(store):
    with pytest.raises(SeasonError) as err:
        store.add_target(m51(plan=(PlanLine("ota1", "L", 300.0, -1),)))
    assert "plan.ota1[0].count" in str(err.value) and ">= 0" in str(err.value)
    assert store.targets() == []


def test_counts_by_grade_with_surplus_apart(store):
    target = store.add_target(m51())
    store.record_frame(frame("/i/1.fits"))
    store.record_frame(frame("/i/2.fits"))
    store.record_frame(frame("/i/3.fits", grade=REJECTED, reason="HFR 4.1 > 3.0"))
    store.record_frame(frame("/i/4.fits", grade=PENDING))
    store.record_frame(frame("/i/5.fits", surplus=True))
    store.record_frame(frame("/i/6.fits", surplus=True, grade=REJECTED))
    store.record_frame(frame("/i/r1.fits", node="ota2", filter_name="Red"))
    store.record_frame(frame("/i/ha.fits", node="ota2", filter_name="Ha"))  # not in the plan
    store.record_frame(frame("/i/other.fits", target="M101"))  # another target's frame
    p = store.progress(target)
    lum = p.get("ota1", "Luminance")
    assert (lum.desired, lum.accepted, lum.rejected, lum.pending, lum.surplus) == (3, 2, 1, 1, 2)
    assert p.get("ota2", "Red").to_dict() == {"desired": 2, "accepted": 1, "rejected": 0, "pending": 0, "surplus": 0}
    assert p.get("ota2", "Green").to_dict()["desired"] == 2
    assert p.counts[("ota2", "Ha")].to_dict() == {"desired": 0, "accepted": 1, "rejected": 0, "pending": 0,
                                                  "surplus": 0}
    assert p.node_complete(target, "ota1")  # 2 accepted + 1 pending of 3
    assert not p.complete(target)
    assert store.progress_all() == {"M51": p}


def test_progress_all_has_every_target_in_one_pass(store):
    for i in range(30):
        store.add_target(m51(name=f"T{i:02d}", plan=(PlanLine("ota1", "L", 60.0, 5),)))
        for k in range(i % 4):
            store.record_frame(frame(f"/i/T{i}_{k}.fits", target=f"T{i:02d}", filter_name="L"))
    statements = []
    store._conn.set_trace_callback(statements.append)
    everything = store.progress_all()
    store._conn.set_trace_callback(None)
    assert len(everything) == 30
    assert all(everything[f"T{i:02d}"].get("ota1", "L").accepted == i % 4 for i in range(30))
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) <= 4


def test_a_frame_recorded_twice_is_kept_once(store):
    store.add_target(m51())
    first = store.record_frame(frame("/i/1.fits"))
    again = store.record_frame(frame("/i/1.fits", grade=REJECTED))
    assert first == again
    assert len(store.frames()) == 1 and store.frames()[0].grade == ACCEPTED
    other_node = store.record_frame(frame("/i/1.fits", node="ota2", filter_name="Red"))  # same path, other node
    assert other_node != first and len(store.frames()) == 2


def test_set_grade_by_path_or_basename(store):
    store.add_target(m51())
    store.record_frame(frame("/data/images/ota2_M51_Red_300s_0001.fits", node="ota2", filter_name="Red",
                             grade=PENDING))
    store.record_frame(frame("/data/images/ota1_M51_L_0001.fits", grade=PENDING))
    # a slave's frame_measured event names the file only
    assert store.set_grade("ota2", "ota2_M51_Red_300s_0001.fits", ACCEPTED)
    assert store.set_grade("ota1", "/data/images/ota1_M51_L_0001.fits", REJECTED, reason="elongated 0.6")
    assert not store.set_grade("ota1", "ota2_M51_Red_300s_0001.fits", ACCEPTED)  # that node has no such file
    assert not store.set_grade("ota3", "nothing.fits", ACCEPTED)
    rows = {r.node: r for r in store.frames()}
    assert rows["ota2"].grade == ACCEPTED
    assert (rows["ota1"].grade, rows["ota1"].reason) == (REJECTED, "elongated 0.6")
    with pytest.raises(SeasonError, match="allowed: accepted, rejected, pending"):
        store.set_grade("ota1", "x.fits", "great")
    with pytest.raises(SeasonError, match="allowed: accepted"):
        store.record_frame(frame("/i/x.fits", grade="good"))


def test_upsert_replaces_the_plan_and_keeps_the_frames(store):
    store.add_target(m51())
    store.record_frame(frame("/i/1.fits"))
    changed = store.upsert_target(m51(ra=203.0, plan=(PlanLine("ota1", "Luminance", 600.0, 10),)))
    assert store.target("M51") == changed
    assert store.target("M51").plan == (PlanLine("ota1", "Luminance", 600.0, 10),)
    assert store.progress(changed).get("ota1", "Luminance").accepted == 1


def test_remove_keeps_frames_unlisted_and_a_readd_counts_them_again(store):
    store.add_target(m51())
    store.record_frame(frame("/i/1.fits"))
    assert store.remove_target("M51")
    assert not store.remove_target("M51")
    assert store.targets() == [] and store.frames() == [] and store.progress_all() == {}
    assert store._conn.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 1  # the row is kept
    target = store.add_target(m51())
    assert store.progress(target).get("ota1", "Luminance").accepted == 1


def test_frames_filter_by_target_and_node(store):
    store.add_target(m51())
    store.add_target(m51(name="M101", plan=(PlanLine("ota1", "Luminance", 300.0, 3),)))
    store.record_frame(frame("/i/1.fits", exposure_id="e1"))
    store.record_frame(frame("/i/2.fits", node="ota2", filter_name="Red"))
    store.record_frame(frame("/i/3.fits", target="M101"))
    assert [f.path for f in store.frames(target="M51")] == ["/i/1.fits", "/i/2.fits"]
    assert [f.path for f in store.frames(node="ota1")] == ["/i/1.fits", "/i/3.fits"]
    assert [f.path for f in store.frames(target="M51", node="ota2")] == ["/i/2.fits"]
    row = store.frames(node="ota1", target="M51")[0]
    assert row == FrameRow("ota1", "M51", "Luminance", 300.0, "/i/1.fits", ACCEPTED, T0, "e1", False, None, row.id)


def test_a_restart_keeps_everything(db):
    with SeasonStore(db, clock=clock) as s:
        s.add_target(m51())
        s.record_frame(frame("/i/1.fits", grade=PENDING))
        s.note_node("ota2", "slave", ["Red", "Green", "Blue"])
        s.put_state("runtime", {"current": "M51", "since": T0})
        before = (s.targets(), s.frames(), s.progress_all(), s.nodes(), s.get_state("runtime"), s.projects())
    with SeasonStore(db, create=False, clock=clock) as s:
        after = (s.targets(), s.frames(), s.progress_all(), s.nodes(), s.get_state("runtime"), s.projects())
        assert s.set_grade("ota1", "1.fits", ACCEPTED)
    assert after == before
    assert after[3]["ota2"].filters == ("Red", "Green", "Blue") and after[3]["ota2"].seen_at == T0


def test_nodes_and_state(store):
    assert store.nodes() == {} and store.get_state("runtime") is None
    store.note_node("ota1", "master", ["L", "R"], at=5.0)
    store.note_node("ota1", "master", ["L", "R", "G"], at=6.0)  # a change: written at once
    store.note_node("ota3", None, [])
    nodes = store.nodes()
    assert nodes["ota1"].filters == ("L", "R", "G") and nodes["ota1"].seen_at == 6.0
    assert nodes["ota3"].filters == () and nodes["ota3"].role is None and nodes["ota3"].seen_at == T0
    store.put_state("runtime", {"current": "M51"})
    store.put_state("runtime", {"current": None, "since": 1.5})
    assert store.get_state("runtime") == {"current": None, "since": 1.5}
    with pytest.raises(SeasonError, match="JSON"):
        store.put_state("bad", {"x": object()})


def test_an_unchanged_wheel_is_rewritten_only_every_node_refresh_s(db):
    with SeasonStore(db, clock=clock, node_refresh_s=300.0) as s:
        s.note_node("ota2", "slave", ["R", "G"], at=1000.0)
        writes = []
        s._conn.set_trace_callback(writes.append)
        s.note_node("ota2", "slave", ["R", "G"], at=1100.0)  # the same wheel 100 s later: nothing written
        assert not writes and s.nodes()["ota2"].seen_at == 1000.0
        s.note_node("ota2", "slave", ["R", "G"], at=1300.0)  # 300 s on: seen_at refreshed
        assert s.nodes()["ota2"].seen_at == 1300.0
        s.note_node("ota2", "slave", ["R", "G", "B"], at=1301.0)  # a new wheel: at once
        assert s.nodes()["ota2"].filters == ("R", "G", "B")
        s._conn.set_trace_callback(None)


def test_threads_and_a_second_connection_write_concurrently(db):
    threads_n, frames_n = 6, 40
    errors: list[BaseException] = []
    with SeasonStore(db, clock=clock) as shared:
        shared.add_target(m51())
        other = SeasonStore(db, clock=clock)  # as `indisync targets` in another process would

        def writer(k: int, s: SeasonStore) -> None:
            try:
                for i in range(frames_n):
                    path = f"/i/{k}_{i}.fits"
                    s.record_frame(frame(path, grade=PENDING))
                    s.record_frame(frame(path, grade=PENDING))  # a duplicate on the way
                    if i % 2:
                        assert s.set_grade("ota1", f"{k}_{i}.fits", ACCEPTED)
                    s.put_state(f"w{k}", {"i": i})
                    s.note_node(f"n{k}", "slave", ["L"])
                    s.progress_all()
            except BaseException as exc:  # reported below: a thread never dies silently
                errors.append(exc)

        workers = [threading.Thread(target=writer, args=(k, shared if k % 2 else other), daemon=True)
                   for k in range(threads_n)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
        other.close()
        assert not any(w.is_alive() for w in workers), "a writer is stuck"
        assert not errors, errors
        count = shared.progress(shared.target("M51")).get("ota1", "Luminance")
        assert count.accepted == threads_n * frames_n // 2
        assert count.pending == threads_n * frames_n // 2
        assert len(shared.frames()) == threads_n * frames_n
        assert all(shared.get_state(f"w{k}") == {"i": frames_n - 1} for k in range(threads_n))
        assert len(shared.nodes()) == threads_n


def test_a_closed_store_says_so(db):
    s = SeasonStore(db)
    s.close()
    with pytest.raises(SeasonError, match="closed"):
        s.targets()


@pytest.mark.parametrize("module", ["indisync.season.store", "indisync.season.yamlio", "indisync.commands.targets"])
def test_importing_the_store_loads_nothing_heavy(module):
    probe = f"import json, sys; import {module}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout
    heavy = set(json.loads(out.strip().splitlines()[-1])) & {"numpy", "astropy", "paho", "photutils", "scipy"}
    assert not heavy, f"importing {module} loads {sorted(heavy)}"
