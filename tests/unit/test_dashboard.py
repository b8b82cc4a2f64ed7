"""The dashboard (issue 20): a bad message blanks only what is bad; the server is private by default
(127.0.0.1, an optional password as basic auth or ?token=, a cap on live streams, idle sockets
closed); the rig panel's text (weather, mount, dome, guard, the night line) in the site's time.

No broker: messages are handed to the model as paho would; the HTTP server is real, on 127.0.0.1
and a free port. Times are fixed (a test never depends on the time of day)."""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from indisync.dashboard import rigview, timefmt
from indisync.dashboard.model import LiveModel, clean_state
from indisync.dashboard.server import DashboardServer, redact
from indisync.dashboard.settings import DashboardSettings
from indisync.protocol import messages
from indisync.protocol.topics import Topics
from indisync.protocol.transport import Incoming

T = Topics()
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 5, 20, 0, tzinfo=timezone.utc)  # 21:00 in Berlin
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100 + b"\xff\xd9"


def iso(when: datetime) -> str:
    return messages.now_iso(when)


def envelope(node: str, payload: dict, mtype: str = "state") -> bytes:
    return json.dumps({"v": 1, "type": mtype, "id": "a1", "from": node, "ts": messages.now_iso(),
                       "payload": payload}).encode()


def state(node: str, **fields) -> bytes:
    return envelope(node, {"role": "slave", "phase": "idle", "version": "x", "frames": 0, **fields})


def deliver(model: LiveModel, topic: str, payload: bytes, retain: bool = False) -> None:
    msg = Incoming(topic, payload, retain)
    if "/guard/" in topic:
        model.on_guard(msg)
    elif topic.endswith("/image/frame"):
        model.on_preview(msg)
    else:
        model.on_message(msg)


def bad_duration_exposure() -> dict:
    return {"id": "7", "filter": "Red", "start": messages.now_iso(), "duration": "300", "progress": 0.1}


# ---- a bad message blanks only what is bad -----------------------------------------------------
def test_a_malformed_state_field_blanks_only_that_field():
    """Regression (issue 20): exposure.duration "300" (a string) made snapshot() raise, so
    /api/state answered 500 and every live stream died until the retained state was cleared."""
    model = LiveModel(T, 5.0)
    deliver(model, "indisync/ota1/status", b"online")
    deliver(model, "indisync/ota1/state", state("ota1", role="master", phase="exposing", frames=3,
                                                 exposure={"id": "1", "filter": "L", "start": messages.now_iso(),
                                                           "duration": 60.0, "progress": 0.5}))
    deliver(model, "indisync/ota2/status", b"online")
    deliver(model, "indisync/ota2/state", state("ota2", phase="exposing", frames=5, filter="Red",
                                                 exposure=bad_duration_exposure()))
    rows = {row["name"]: row for row in model.snapshot()["nodes"]}
    assert rows["ota1"]["exposure"]["duration"] == 60.0 and rows["ota1"]["online"]
    bad = rows["ota2"]
    assert bad["exposure"] is None  # blanked
    assert bad["online"] and bad["phase"] == "exposing" and bad["frames"] == 5 and bad["filter"] == "Red"
    assert "expected a number" in bad["problems"]["exposure"] and "'300'" in bad["problems"]["exposure"]
    json.dumps(model.snapshot())  # what the server sends


def test_a_malformed_state_never_breaks_api_state_or_the_stream():
    """Regression (issue 20), through HTTP: 200 from /api/state and data on /events."""
    model = LiveModel(T, 5.0)
    deliver(model, "indisync/ota2/status", b"online")
    deliver(model, "indisync/ota2/state", state("ota2", phase="exposing", exposure=bad_duration_exposure()))
    deliver(model, "indisync/ota1/state", state("ota1", role="master"))
    server = DashboardServer(model, "127.0.0.1", 0).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/api/state", timeout=10) as answer:
            assert answer.status == 200
            snap = json.loads(answer.read())
        assert [n["name"] for n in snap["nodes"]] == ["ota1", "ota2"]
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/events", timeout=10) as stream:
            line = stream.readline()
            assert line.startswith(b"data: ") and json.loads(line[6:])["nodes"][1]["name"] == "ota2"
    finally:
        server.stop()


def test_unreadable_state_event_and_rig_part_are_blanked_and_said():
    model = LiveModel(T, 5.0)
    deliver(model, "indisync/ota2/status", b"online")
    deliver(model, "indisync/ota2/state", state("ota2", frames=2))
    deliver(model, "indisync/ota2/state", b"{not json")  # the whole state: blanked, said
    row = model.snapshot()["nodes"][0]
    assert row["frames"] is None and "unreadable" in row["problems"]["state"]
    # an event with a bad field: the field is dropped, the event's good fields still count
    deliver(model, "indisync/ota2/event", envelope("ota2", {"run_id": "r1"}, "autofocus_started"))
    deliver(model, "indisync/ota2/event", envelope("ota2", {"run_id": "r1", "position": "100", "hfr": 3.0},
                                                   "autofocus_point"))
    deliver(model, "indisync/ota2/event", envelope("ota2", {"run_id": "r1", "position": 120, "hfr": 2.5},
                                                   "autofocus_point"))
    row = model.snapshot()["nodes"][0]
    assert row["vcurve"]["points"] == [[120, 2.5]] and "autofocus_point.position" in row["event_problem"]
    # the master's rig: a bad mount never hides the weather
    rig = {"weather": {"safe": False, "since": iso(NOW), "detail": "alert: rain hour"},
           "mount": {"parked": "yes"}, "dome": {"shutter": "closed", "parked": None}, "site_tz": "Europe/Berlin"}
    good, bad = clean_state({"role": "master", "phase": "idle", "version": "x", "rig": rig})
    assert good["rig"]["weather"]["safe"] is False and "mount" not in good["rig"] and "rig.mount" in bad
    deliver(model, "indisync/ota1/status", b"online")
    deliver(model, "indisync/ota1/state", state("ota1", role="master", rig=rig))
    snap = model.snapshot()
    assert snap["rig"]["weather"]["safe"] is False and "rig.mount" in snap["rig"]["problems"]
    assert snap["rig"]["mount"]["text"] == "no mount"  # blank, as if absent; the problem line says why


def test_a_preview_is_kept_per_node_and_a_non_jpeg_is_refused():
    model = LiveModel(T, 5.0)
    deliver(model, "indisync/ota2/image/frame", JPEG, retain=True)
    deliver(model, "indisync/ota3/image/frame", b"\x89PNG not a jpeg")
    rows = {r["name"]: r for r in model.snapshot()["nodes"]}
    assert re.fullmatch(r"api/frame/ota2\.jpg\?v=[0-9a-f]{8}-1", rows["ota2"]["preview"]["url"])
    assert "retained" in rows["ota2"]["preview"]["received"]
    assert model.preview("ota2") == JPEG
    assert rows["ota3"]["preview"] is None and "not a JPEG" in rows["ota3"]["event_problem"]
    deliver(model, "indisync/ota2/image/vcurve", b"\x89PNG")  # not ours: other image names are ignored
    assert model.preview("ota2") == JPEG


# ---- the server: private by default ---------------------------------------------------------------
def get(url: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@pytest.fixture
def served():
    servers = []

    def start(**settings) -> tuple[LiveModel, DashboardServer, str]:
        model = LiveModel(T, 5.0)
        server = DashboardServer(model, settings=DashboardSettings(port=0, **settings)).start()
        servers.append(server)
        return model, server, f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.stop()


def test_listens_on_127_0_0_1_by_default(served):
    assert DashboardSettings().host == "127.0.0.1" and DashboardSettings().local_only
    _, server, _ = served()
    assert server.httpd.server_address[0] == "127.0.0.1"
    from indisync.commands.dashboard import add_arguments, settings_for
    from indisync.config import load_config
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert settings_for(parser.parse_args([]), load_config()).host == "127.0.0.1"
    opened = settings_for(parser.parse_args(["--host", "0.0.0.0", "--port", "8090"]), load_config())
    assert (opened.host, opened.port, opened.local_only) == ("0.0.0.0", 8090, False)
    assert settings_for(parser.parse_args(["--bind", "::1"]), load_config()).local_only  # the old flag still works


def test_password_basic_auth_or_token(served, caplog, tmp_path):
    secret = "s3cret-for-the-rig"
    (tmp_path / "dashboard.pass").write_text(secret + "\n")
    model, _, base = served(password_file=str(tmp_path / "dashboard.pass"))
    deliver(model, "indisync/ota2/image/frame", JPEG)
    for path in ("/", "/api/state", "/events", "/api/frame/ota2.jpg"):
        status, body, headers = get(base + path)
        assert status == 401 and b"password" in body, path
        assert headers["WWW-Authenticate"].startswith("Basic realm=")
    assert get(base + "/api/state?token=wrong")[0] == 401
    basic = {"Authorization": "Basic " + base64.b64encode(f"anyone:{secret}".encode()).decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"anyone:nope").decode()}
    assert get(base + "/api/state", wrong)[0] == 401
    assert get(base + "/api/state", {"Authorization": "Basic %%%"})[0] == 401
    with caplog.at_level(logging.DEBUG, logger="indisync.dashboard"):
        assert get(base + "/api/state", basic)[0] == 200
        status, body, headers = get(base + f"/api/frame/ota2.jpg?token={secret}")
        assert status == 200 and body == JPEG and headers["Content-Type"] == "image/jpeg"
        assert headers["Cache-Control"] == "private, max-age=3600"  # a versioned URL: cached, not fetched per render
        assert get(base + f"/?token={secret}")[0] == 200
    assert caplog.records and secret not in caplog.text and "token=***" in caplog.text
    assert redact("GET /events?x=1&token=abc&y=2 HTTP/1.1") == "GET /events?x=1&token=***&y=2 HTTP/1.1"


def test_the_next_stream_past_the_cap_gets_503_with_the_reason(served, monkeypatch):
    monkeypatch.setattr("indisync.dashboard.server.KEEPALIVE_S", 0.5)  # a closed viewer is noticed sooner
    _, server, base = served(max_streams=2)
    first = urllib.request.urlopen(base + "/events", timeout=10)
    second = urllib.request.urlopen(base + "/events", timeout=10)
    try:
        assert first.readline().startswith(b"data: ") and second.readline().startswith(b"data: ")
        status, body, headers = get(base + "/events")
        assert status == 503 and b"max_streams" in body and headers["Retry-After"] == "30"
        assert get(base + "/api/state")[0] == 200  # snapshots are not streams
    finally:
        first.close()
    # the closed viewer's slot comes back once its stream's next write fails (a keep-alive at the latest)
    deadline = time.monotonic() + 15
    while server.streams.used > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.streams.used == 1
    third = urllib.request.urlopen(base + "/events", timeout=10)
    try:
        assert third.readline().startswith(b"data: ")
    finally:
        third.close()
        second.close()


def test_an_idle_socket_is_closed(served):
    _, _, base = served(socket_timeout=1.0)
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /api/st")  # half a request, then silence
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed by the server
        assert time.monotonic() - started < 5


def test_dashboard_settings_refuse_bad_values():
    from indisync.config import load_config
    from indisync.errors import ConfigError

    cfg = load_config(data={"dashboard": {"host": "0.0.0.0", "password_file": "/etc/indisync/dashboard.pass",
                                          "max_streams": 3, "socket_timeout": 10}})
    assert (cfg.dashboard.host, cfg.dashboard.max_streams, cfg.dashboard.local_only) == ("0.0.0.0", 3, False)
    for bad, key in (({"port": 70000}, "dashboard.port"), ({"max_streams": 0}, "dashboard.max_streams"),
                     ({"password_file": " "}, "dashboard.password_file"),
                     ({"socket_timeout": 0}, "dashboard.socket_timeout"),
                     ({"host": ""}, "dashboard.host")):
        with pytest.raises(ConfigError, match=key):
            load_config(data={"dashboard": bad})


def test_the_password_comes_from_a_file_and_a_bad_one_says_how_to_fix_it(tmp_path):
    from indisync.dashboard.settings import read_password
    from indisync.errors import ConfigError

    assert read_password(DashboardSettings()) is None
    (tmp_path / "ok").write_text("pw with spaces\r\n")
    assert read_password(DashboardSettings(password_file=str(tmp_path / "ok"))) == "pw with spaces"
    with pytest.raises(ConfigError, match=r"dashboard.password_file .*missing.*Create it holding only the password"):
        DashboardServer(LiveModel(T, 5.0), settings=DashboardSettings(port=0, password_file=str(tmp_path / "missing")))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="first line must be the password"):
        read_password(DashboardSettings(password_file=str(tmp_path / "empty")))


# ---- the rig panel and the night line, as a person reads them ------------------------------------
def rain_rig(since: datetime) -> dict:
    return {"weather": {"safe": False, "since": iso(since), "detail": "alert: rain hour"},
            "mount": {"parked": True, "tracking": False, "slewing": False, "pier_side": "west", "ra_deg": 83.822,
                      "dec_deg": -5.391, "alt_deg": 12.34, "az_deg": 140.2},
            "dome": {"shutter": "closed", "parked": True}, "site_tz": "Europe/Berlin"}


def guard_state(state: str, since: datetime, **more) -> bytes:
    payload = {"state": state, "since": iso(since), "reason": None, "rig_safe": True, "unsafe": True,
               "weather": {"safe": False, "age_s": 2.0}, "mount": {"parked": True}, "dome": {"closed": True},
               "sun_alt_deg": -30.0, "master_online": True, "last_action": None, **more}
    return envelope("guard", payload, "guard_state")


def test_rig_panel_during_rain_in_the_sites_time():
    model = LiveModel(T, 5.0, wall=lambda: NOW)
    deliver(model, "indisync/ota1/status", b"online")
    deliver(model, "indisync/ota1/state", state("ota1", role="master", rig=rain_rig(NOW - timedelta(minutes=3)),
                                                 night={"state": "parked", "since": iso(NOW - timedelta(minutes=2)),
                                                        "until": iso(NOW + timedelta(minutes=12)),
                                                        "reason": "weather alert (WEATHER_STATUS)"}))
    deliver(model, "indisync/guard/guard/status", b"online", retain=True)
    deliver(model, "indisync/guard/guard/state", guard_state("armed", NOW - timedelta(hours=2)), retain=True)
    snap = model.snapshot()
    rig = snap["rig"]
    assert rig["zone"] == "Europe/Berlin" and rig["master"] == "ota1"
    assert rig["weather"]["text"] == "UNSAFE — alert: rain hour · since 20:57 (3 min ago)"
    assert rig["mount"]["text"].startswith("parked · pier side west · RA 83.82° (05h35m17s) Dec -5.39° (JNow)")
    assert rig["mount"]["text"].endswith("alt 12.3° az 140.2°")
    assert rig["dome"]["text"] == "shutter closed · parked"
    assert rig["guards"][0]["state"] == "armed" and rig["guards"][0]["text"] == "armed (watching) · since 19:00 (2 h ago)"
    assert rig["verdict"] == {"level": "ok", "text": "closed up for the weather"}
    assert snap["night"]["line"] == ("parked for the weather — weather alert (WEATHER_STATUS) · since 20:58 (2 min ago)"
                                     " · resumes if it stays safe 21:12 (in 12 min)")


def test_verdicts():
    weather_bad = rigview.weather_view({"safe": False, "since": None, "detail": "alert: rain"}, NOW, BERLIN)
    weather_ok = rigview.weather_view({"safe": True, "since": None, "detail": None}, NOW, BERLIN)
    out = rigview.mount_view({"parked": False, "tracking": True})
    parked = rigview.mount_view({"parked": True, "tracking": False})
    closed, opened = rigview.dome_view({"shutter": "closed"}), rigview.dome_view({"shutter": "open"})
    armed = rigview.guard_view("guard", "online", {"state": "armed"}, None, NOW, BERLIN)
    acting = rigview.guard_view("guard", "online", {"state": "acting", "reason": "rain and the mount out for 61 s"},
                                None, NOW, BERLIN)
    gone = rigview.guard_view("guard", "offline", {"state": "armed"}, None, NOW, BERLIN)
    silent = rigview.guard_view("guard", "online", {"state": "armed"}, None, NOW, BERLIN, age_s=60.0)
    assert rigview.verdict(weather_bad, out, opened, [armed], True)["text"] == \
        "NOT SAFE: bad weather and mount not parked, dome open"
    assert rigview.verdict(weather_bad, parked, closed, [armed], True)["level"] == "ok"
    turning = rigview.dome_view({"shutter": "moving", "parked": False})  # the dome turning to its park, shutter shut
    assert rigview.verdict(weather_bad, parked, turning, [armed], True) == {
        "level": "warn", "text": "bad weather; closing up (dome moving)"}
    assert rigview.verdict(weather_bad, out, turning, [armed], True)["text"] == \
        "NOT SAFE: bad weather and mount not parked, dome moving"
    assert rigview.verdict(weather_ok, out, opened, [armed], True) == {"level": "ok",
                                                                       "text": "weather safe (mount not parked, dome open)"}
    assert rigview.verdict(weather_ok, parked, closed, [acting], True)["level"] == "alarm"
    assert gone["text"].startswith("OFFLINE") and rigview.verdict(weather_ok, parked, closed, [gone], True)["level"] == "warn"
    assert silent["stale"] and "hung?" in silent["text"]
    assert rigview.verdict(weather_ok, parked, closed, [], False)["text"] == "no rig state from the master yet"
    assert rigview.weather_view(None, NOW, BERLIN)["text"].startswith("no weather station")
    last = rigview.guard_view("guard", "online", {"state": "acted", "last_action": {
        "at": iso(NOW - timedelta(minutes=12)), "why": "master offline with the mount out", "parked": True,
        "closed": False}}, None, NOW, BERLIN)
    assert last["last_action"] == "last acted 20:48 (12 min ago): master offline with the mount out (parked, NOT closed)"


def test_the_night_line_reads_as_words_with_local_times():
    """Was: "imaging (centred (no acquisition configured (night.center is off))) — next at 2026-12-05T15:25:41.444Z"."""
    night = {"state": "imaging", "since": iso(NOW - timedelta(minutes=12)), "reason": "centring skipped: night.center is off",
             "until": iso(NOW + timedelta(hours=7, minutes=25, seconds=41))}
    view = rigview.night_view(night, NOW, BERLIN)
    assert view["line"] == ("imaging — centring skipped: night.center is off · since 20:48 (12 min ago) · "
                            "window ends Sun 04:25 (in 7 h 26 min)")
    dark = rigview.night_view({"state": "waiting_dark", "until": iso(NOW + timedelta(minutes=42)), "reason": None}, NOW, BERLIN)
    assert dark["line"] == "waiting for dark · imaging may start 21:42 (in 42 min)"
    assert rigview.night_view(None, NOW, BERLIN) is None


def test_the_machine_says_why_centring_was_skipped_without_nesting():
    from indisync.night.machine import Ev, NightPlan, State, start, step

    plan = NightPlan(slew=True, guide=True, park_at_end=True, center=False)
    snap, _ = start(0.0, plan, None, None, next_duration=10.0)
    snap, _ = step(snap, Ev.SLEWED, 1.0, plan)
    assert snap.state == State.CENTERING.value
    snap, _ = step(snap, Ev.CENTERED, 2.0, plan, {"ok": True, "reason": "night.center is off"})
    assert snap.reason == "centring skipped: night.center is off"


def test_relative_and_clock_times():
    assert [timefmt.relative(s) for s in (0, 44, -44, 60, -180, 720, 5399, 5400, 7 * 3600 + 1560, -40 * 3600)] == [
        "now", "now", "now", "in 1 min", "3 min ago", "in 12 min", "in 90 min", "in 1 h 30 min", "in 7 h 26 min",
        "2 d ago"]
    assert timefmt.moment("2026-12-05T15:25:41.444Z", NOW, BERLIN)["text"] == "16:25 (4 h 34 min ago)"
    assert timefmt.moment(NOW.timestamp() + 10 * 86400, NOW, BERLIN)["local"] == "2026-12-15 21:00"
    assert timefmt.moment("not a time", NOW, BERLIN) is None and timefmt.moment(True, NOW, BERLIN) is None
    assert timefmt.zone("Europe/Berlin")[1] == "Europe/Berlin"
    assert "this computer" in timefmt.zone("Not/AZone")[1]  # logged once, then the computer's zone


def test_a_stream_keeps_going_when_a_snapshot_fails(monkeypatch):
    """Even a defect in the model (not only bad data) must not end the stream for good."""
    model = LiveModel(T, 5.0)
    server = DashboardServer(model, "127.0.0.1", 0).start()
    calls = {"n": 0}
    real = model.snapshot

    def flaky():
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a defect")
        return real()

    monkeypatch.setattr(model, "snapshot", flaky)
    monkeypatch.setattr("indisync.dashboard.server.KEEPALIVE_S", 0.5)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/events", timeout=10) as stream:
            lines = [stream.readline() for _ in range(4)]  # data, blank, data, blank
        payloads = [json.loads(line[6:]) for line in lines if line.startswith(b"data: ")]
        assert "stream_error" in payloads[0] and payloads[1]["nodes"] == []
    finally:
        server.stop()


# ---- the master's rig state ----------------------------------------------------------------------
class FakeClient:
    def __init__(self, props: dict, updated: float | None = None):
        self.props, self.updated = props, updated

    def snapshot(self, device, name):
        return self.props.get((device, name))

    def last_update(self, device, prefix=""):
        return self.updated


def snap(device, name, values, state="Ok", kind="number"):
    from indisync.devices.client import PropertySnapshot

    return PropertySnapshot(device, name, kind, state, values)


def rain_devices(mono: float):
    from types import SimpleNamespace

    from indisync.devices.dome import Dome
    from indisync.devices.mount import Mount
    from indisync.devices.weather import Weather

    props = {}
    for s in (snap("Weather Simulator", "WEATHER_STATUS", {"WEATHER_RAIN_HOUR": "Alert", "WEATHER_WIND_SPEED": "Ok"},
                   "Alert", "light"),
              snap("Telescope Simulator", "TELESCOPE_PARK", {"PARK": True, "UNPARK": False}, kind="switch"),
              snap("Telescope Simulator", "TELESCOPE_TRACK_STATE", {"TRACK_ON": False, "TRACK_OFF": True}, kind="switch"),
              snap("Telescope Simulator", "TELESCOPE_PIER_SIDE", {"PIER_EAST": False, "PIER_WEST": True}, kind="switch"),
              snap("Telescope Simulator", "EQUATORIAL_EOD_COORD", {"RA": 5.5882, "DEC": -5.391}),
              snap("Telescope Simulator", "GEOGRAPHIC_COORD", {"LAT": 48.14, "LONG": 11.58, "ELEV": 520.0}),
              snap("Dome Simulator", "DOME_SHUTTER", {"SHUTTER_OPEN": False, "SHUTTER_CLOSE": True}, kind="switch"),
              snap("Dome Simulator", "DOME_PARK", {"PARK": True, "UNPARK": False}, kind="switch")):
        props[(s.device, s.name)] = s
    client = FakeClient(props, updated=mono - 2.0)
    return SimpleNamespace(weather=Weather(client, "Weather Simulator"), mount=Mount(client, "Telescope Simulator"),
                           dome=Dome(client, "Dome Simulator")), client


def rig_config():
    from indisync.config import load_config

    return load_config(data={"indi": {"weather": "Weather Simulator", "dome": "Dome Simulator"},
                             "site": {"latitude": 48.14, "longitude": 11.58, "timezone": "Europe/Berlin"}})


def test_master_reads_the_rig_during_rain_from_cached_values():
    from indisync.node.master_rig_state import RigStateReader

    devices, client = rain_devices(1000.0)
    wall = [NOW.timestamp()]
    reader = RigStateReader(rig_config(), lambda: devices, wall=lambda: wall[0], mono=lambda: 1000.0)
    rig = reader.read()
    assert rig["weather"] == {"safe": False, "since": iso(NOW), "detail": "alert: rain hour"}
    mount = rig["mount"]
    assert (mount["parked"], mount["tracking"], mount["slewing"], mount["pier_side"]) == (True, False, False, "west")
    assert mount["ra_deg"] == pytest.approx(83.823) and mount["dec_deg"] == -5.391
    assert -90 <= mount["alt_deg"] <= 90 and 0 <= mount["az_deg"] < 360
    assert rig["dome"] == {"shutter": "closed", "parked": True} and rig["site_tz"] == "Europe/Berlin"
    messages.make("state", "ota1", {"role": "master", "phase": "idle", "version": "x", "rig": rig})  # fits the schema
    # still raining a minute later: "since" stays; dry again: "since" moves
    wall[0] += 60
    assert reader.read()["weather"]["since"] == iso(NOW)
    client.props[("Weather Simulator", "WEATHER_STATUS")] = snap("Weather Simulator", "WEATHER_STATUS",
                                                                 {"WEATHER_RAIN_HOUR": "Ok"}, "Ok", "light")
    assert reader.read()["weather"] == {"safe": True, "since": iso(NOW + timedelta(seconds=60)), "detail": None}
    client.updated = 1000.0 - 500  # stale: unsafe, as the night judges it
    assert "safety.stale_after" in reader.read()["weather"]["detail"]
    # the indiserver gone: the weather is unsafe (as the night says), the mount and dome unknown
    lost = RigStateReader(rig_config(), lambda: (_ for _ in ()).throw(RuntimeError("no connection")))
    rig = lost.read()
    assert rig["weather"]["safe"] is False and "no connection" in rig["weather"]["detail"]
    assert rig["mount"]["parked"] is None and rig["dome"] == {"shutter": "unknown", "parked": None}


def test_altaz_from_jnow_and_the_site():
    from indisync.node.master_rig_state import altaz_deg

    when = datetime(2026, 12, 5, 20, 0, tzinfo=timezone.utc)
    alt, _ = altaz_deg(0.0, 90.0, 48.14, 11.58, when)
    assert alt == pytest.approx(48.14, abs=1e-6)  # the pole stands at the latitude
    jd = when.timestamp() / 86400 + 2440587.5
    lst_h = ((280.46061837 + 360.98564736629 * (jd - 2451545.0) + 11.58) % 360) / 15
    alt, _ = altaz_deg(lst_h, 48.14, 48.14, 11.58, when)
    assert alt == pytest.approx(90.0, abs=1e-6)  # on the meridian at the latitude's declination: zenith
    alt, az = altaz_deg(lst_h, 0.0, 48.14, 11.58, when)
    assert alt == pytest.approx(90 - 48.14, abs=1e-6) and az == pytest.approx(180.0, abs=1e-6)  # due south


def test_rig_state_is_republished_on_change_while_moving_or_now_and_then():
    from indisync.node.master_rig_state import RigStatePublisher

    mono = [0.0]
    rig = {"weather": None, "dome": None, "site_tz": None,
           "mount": {"parked": False, "tracking": True, "slewing": False, "pier_side": "west", "ra_deg": 10.0,
                     "dec_deg": 20.0, "alt_deg": 40.0, "az_deg": 359.9}}
    current = {"rig": rig}
    published = []

    class Reader:
        def read(self):
            return json.loads(json.dumps(current["rig"]))

    pub = RigStatePublisher(Reader(), published.append, threading.Event(), mono=lambda: mono[0], refresh=60.0)
    assert pub.tick() and not pub.tick()
    current["rig"]["mount"]["alt_deg"] = 40.3  # tracking drift: not yet
    current["rig"]["mount"]["az_deg"] = 0.2  # across north: 0.3°, not 359.7°
    mono[0] += 10
    assert not pub.tick()
    current["rig"]["mount"]["alt_deg"] = 40.6  # moved more than 0.5°
    assert pub.tick()
    current["rig"]["mount"]["slewing"] = True  # a change, and every reading while it moves
    assert pub.tick() and pub.tick()
    current["rig"]["mount"]["slewing"] = False
    assert pub.tick() and not pub.tick()
    mono[0] += 61
    assert pub.tick()  # refreshed now and then
    assert len(published) == 6


def test_the_rig_state_thread_never_dies(caplog):
    from indisync.node.master_rig_state import RigStatePublisher

    stop = threading.Event()
    calls = []

    class Broken:
        def read(self):
            calls.append(1)
            if len(calls) >= 3:
                stop.set()
            raise RuntimeError("odd reading")

    thread = threading.Thread(target=RigStatePublisher(Broken(), lambda rig: None, stop, every=0.01).run)
    thread.start()
    thread.join(5)
    assert not thread.is_alive() and len(calls) == 3
    assert caplog.text.count("rig state not published") == 1  # the same failure logged once


def test_an_offline_masters_rig_is_said_to_be_old():
    now = [100.0]
    model = LiveModel(T, 5.0, clock=lambda: now[0], wall=lambda: NOW)
    deliver(model, "indisync/ota1/status", b"online")
    deliver(model, "indisync/ota1/state", state("ota1", role="master", rig=rain_rig(NOW)))
    assert model.snapshot()["rig"]["verdict"]["level"] == "ok"
    now[0] += 600
    deliver(model, "indisync/ota1/status", b"offline")  # its Last Will
    verdict = model.snapshot()["rig"]["verdict"]
    assert verdict == {"level": "warn", "text": "master ota1 offline: the rig as it last said 10 min ago — "
                                                "closed up for the weather"}
