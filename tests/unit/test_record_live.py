"""The recorder and the dashboard model fed with MQTT messages as they arrive (no broker), the
long-work progress, and Home Assistant's image entities."""

import json
from datetime import datetime, timedelta, timezone

from indisync.dashboard.model import LiveModel
from indisync.dashboard.progress import describe, long_work
from indisync.protocol import messages
from indisync.protocol.discovery import discovery_messages
from indisync.protocol.topics import Topics
from indisync.protocol.transport import Incoming
from indisync.record.nightlog import NightLogWriter, read_night
from indisync.record.recorder import NightRecorder

T = Topics()


class FakeTransport:
    def __init__(self):
        self.handlers = {}

    def subscribe(self, topic_filter, handler):
        self.handlers[topic_filter] = handler

    def deliver(self, topic, payload, retain=False):
        kind = topic.rsplit("/", 1)[1]
        self.handlers[f"indisync/+/{kind}"](Incoming(topic, payload, retain))


def state(node, **fields):
    payload = {"role": "slave", "phase": "idle", "version": "x", "frames": 0, **fields}
    return json.dumps({"v": 1, "type": "state", "id": "a1", "from": node, "ts": messages.now_iso(),
                       "payload": payload}).encode()


def test_recorder_writes_changes_skips_progress_only_heartbeats_and_keeps_unknown_fields(tmp_path):
    transport = FakeTransport()
    # the night's boundary 12 h from now, not at noon: a test across it would split the log (issue 18)
    writer = NightLogWriter(tmp_path, starts_hour=(datetime.now().hour + 12) % 24)
    recorder = NightRecorder(transport, T, writer)
    exposure = {"id": "1", "filter": "Red", "start": messages.now_iso(), "duration": 60.0}
    transport.deliver("indisync/ota2/status", b"online", retain=True)
    transport.deliver("indisync/ota2/state", state("ota2", phase="exposing", exposure={**exposure, "progress": 0.1}))
    transport.deliver("indisync/ota2/state", state("ota2", phase="exposing", exposure={**exposure, "progress": 0.2}))
    # a newer node's field (cooling) is recorded, not refused
    transport.deliver("indisync/ota2/state", state("ota2", cooling={"setpoint": -10, "temperature": 5, "reached": False}))
    event = messages.make("exposure_done", "ota2", {"exposure_id": "1", "status": "ok", "grade": "rejected",
                                                     "grade_reason": "stars 3 < 0.6 x median 50"})
    transport.deliver("indisync/ota2/event", event.encode())
    transport.deliver("indisync/ota2/event", b"{not json")
    recorder.close()  # what was queued is on disk
    path = writer.path
    writer.close()
    entries = read_night(path).entries
    assert [e["kind"] for e in entries] == ["status", "state", "state", "event", "event"]
    assert entries[0]["retained"] is True and entries[2]["payload"]["cooling"]["setpoint"] == -10
    assert entries[3]["payload"]["grade"] == "rejected" and entries[4]["type"] == "unreadable"


def test_dashboard_model_online_progress_and_vcurve():
    now = [100.0]
    model = LiveModel(T, dead_after=5.0, clock=lambda: now[0])
    transport = FakeTransport()
    model.attach(transport)
    start = messages.now_iso()
    transport.deliver("indisync/ota2/status", b"online")
    transport.deliver("indisync/ota2/state", state("ota2", phase="exposing",
                      exposure={"id": "1", "filter": "Red", "start": start, "duration": 10.0, "progress": 0.1}))
    for kind, payload in (("autofocus_started", {"run_id": "r1"}), ("autofocus_point", {"run_id": "r1", "position": 100, "hfr": 3.0}),
                          ("autofocus_done", {"run_id": "r1", "status": "ok", "position": 100})):
        transport.deliver("indisync/ota2/event", messages.make(kind, "ota2", payload).encode())
    now[0] += 2.0
    row = model.snapshot()["nodes"][0]
    assert row["online"] and abs(row["exposure"]["progress"] - 0.3) < 1e-9  # carried forward by our clock
    assert row["work"]["what"] == "exposing" and abs(row["work"]["left_s"] - 7.0) < 0.01
    assert row["vcurve"] == {"run_id": "r1", "filter": None, "points": [[100, 3.0]], "status": "ok", "position": 100}
    now[0] += 4.0  # 6 s without a heartbeat
    assert not model.snapshot()["nodes"][0]["online"]
    transport.deliver("indisync/ota2/state", state("ota2"))
    assert model.snapshot()["nodes"][0]["online"]
    transport.deliver("indisync/ota2/status", b"offline")  # the Last Will
    assert not model.snapshot()["nodes"][0]["online"]


def test_long_work_from_cooling_night_and_phase():
    now = datetime(2026, 12, 3, 18, 0, tzinfo=timezone.utc)
    cooling = long_work({"phase": "idle", "cooling": {"setpoint": -10, "temperature": 3.5, "reached": False, "eta_s": 27}}, now=now)
    assert cooling == {"what": "cooling", "waits_for": "camera 3.5 °C to reach -10 °C", "left_s": 27}
    until = (now + timedelta(minutes=42)).isoformat().replace("+00:00", "Z")
    dark = long_work({"phase": "idle", "night": {"state": "waiting_dark", "until": until, "reason": "sun at -4°"}}, now=now)
    assert dark["what"] == "waiting_dark" and dark["left_s"] == 42 * 60 and "sun" in describe(dark)
    assert long_work({"phase": "focusing"}, focus_points=4)["waits_for"] == "V-curve sweep, 4 point(s) so far"
    assert long_work({"phase": "idle"}) is None and describe(None) == "-"


def test_discovery_announces_a_retained_vcurve_image_entity():
    configs = dict(discovery_messages(T, "ota2", "slave", "0.1"))
    image = json.loads(configs["homeassistant/image/ota2/vcurve/config"])
    assert image["image_topic"] == "indisync/ota2/image/vcurve" and image["content_type"] == "image/png"
    assert T.parse(image["image_topic"]) is None  # JSON subscribers never see the bytes


def test_status_table_shows_long_work():
    from indisync.commands.status import node_row, render_table
    from indisync.protocol.registry import NodeInfo

    info = NodeInfo("ota1", status="online", alive=True, last_heartbeat=10.0,
                    state={"role": "master", "phase": "idle", "frames": 0,
                           "cooling": {"setpoint": -10, "temperature": 2.0, "reached": False, "eta_s": 24}})
    row = node_row(info, dead_after=8.0, now_mono=11.0)
    assert row["work"]["what"] == "cooling"
    assert "cooling: camera 2.0 °C to reach -10 °C, 24 s left" in render_table([row])


def test_jpeg_preview_of_a_frame(tmp_path):
    import io

    import numpy as np
    from astropy.io import fits
    from PIL import Image

    from indisync.record.preview import jpeg_preview

    data = np.random.default_rng(1).normal(1000, 10, (1024, 1280)).astype(np.uint16)
    data[500:503, 600:603] = 60000
    fits.PrimaryHDU(data).writeto(tmp_path / "f.fits")
    jpeg = jpeg_preview(tmp_path / "f.fits")
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG" and max(image.size) <= 480 and len(jpeg) < 200_000
