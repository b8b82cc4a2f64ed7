"""The season as a person reads it: the master's target, since when and why, and each OTA's plan
for it, filter by filter — desired / accepted / rejected, with pending (waiting for its grade) and
surplus (taken after that OTA's plan was met) when there are any.

One source of words for `indisync status`, the dashboard's season panel and the night report's
"Season" section. Pure: the ``season`` state field (protocol/messages.py SEASON; its ``progress``
is ``Progress.to_dict()``: {node: {filter or "none": counts}}), ``now`` and a zone in, text out.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from .timefmt import moment

COUNT_KEYS = ("desired", "accepted", "rejected", "pending", "surplus")
MAX_CANDIDATES = 5  # the scheduler's other candidates shown on the panel


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def count_row(node: str, filter_name: str, counts: dict, tonight: int | None = None) -> dict:
    """One plan line (or a filter frames were taken with outside the plan: desired 0)."""
    row = {"node": node, "filter": filter_name, **{k: _int((counts or {}).get(k)) for k in COUNT_KEYS}}
    row["met"] = row["desired"] > 0 and row["accepted"] >= row["desired"]
    row["in_plan"] = row["desired"] > 0
    if tonight is not None:
        row["tonight"] = tonight
    row["text"] = count_text(row)
    return row


def count_text(row: dict) -> str:
    """'12/60 accepted · 3 rejected · 1 pending' ('met' when the goal is reached; pending and
    surplus only when not zero; 'not in the plan' for a filter the plan does not ask for)."""
    if row["in_plan"]:
        head = f"{row['accepted']}/{row['desired']} accepted" + (" (met)" if row["met"] else "")
    else:
        head = f"{row['accepted']} accepted (not in the plan)"
    parts = [head, f"{row['rejected']} rejected"]
    if row["pending"]:
        parts.append(f"{row['pending']} pending")
    if row["surplus"]:
        parts.append(f"{row['surplus']} surplus")
    return " · ".join(parts)


def progress_rows(progress: dict | None) -> list[dict]:
    """{node: {filter: counts}} -> one row per node and filter, nodes by name, filters as given
    (the store's and Progress.to_dict's order)."""
    rows = []
    for node, by_filter in sorted((progress or {}).items()):
        if not isinstance(by_filter, dict):
            continue
        for filter_name, counts in by_filter.items():
            if isinstance(counts, dict):
                rows.append(count_row(node, filter_name, counts))
    return rows


def node_groups(rows: list[dict]) -> list[dict]:
    """Rows grouped per OTA with its totals: {node, accepted, desired, complete, lines}."""
    groups: dict[str, dict] = {}
    for row in rows:
        g = groups.setdefault(row["node"], {"node": row["node"], "accepted": 0, "desired": 0, "lines": []})
        g["lines"].append(row)
        if row["in_plan"]:
            g["accepted"] += min(row["accepted"], row["desired"])
            g["desired"] += row["desired"]
    for g in groups.values():
        g["complete"] = all(r["met"] for r in g["lines"] if r["in_plan"])
        g["text"] = f"{g['accepted']}/{g['desired']} accepted" + (" (plan met)" if g["complete"] and g["desired"] else "")
    return list(groups.values())


def _candidate_text(c: dict) -> str:
    if c.get("excluded_by"):
        return f"{c.get('target')}: excluded — {c['excluded_by']}"
    score = c.get("score")
    return f"{c.get('target')}: score {score:.2f}" if isinstance(score, (int, float)) else f"{c.get('target')}"


def season_view(season: dict | None, now: datetime, tz: tzinfo) -> dict | None:
    """The dashboard's season panel; None when the master publishes no season (no scheduler:)."""
    if not isinstance(season, dict) or not season:
        return None
    target = season.get("target")
    since = moment(season.get("since"), now, tz)
    if target:
        head = f"{target}" + (f" ({season['project']})" if season.get("project") else "")
        if season.get("complete"):
            head += " — complete"
    else:
        head = "no target now"
    line = head + (f" · since {since['text']}" if since else "")
    rows = progress_rows(season.get("progress"))
    candidates = [c for c in (season.get("candidates") or []) if isinstance(c, dict) and c.get("target") != target]
    return {"target": target, "project": season.get("project"), "since": since, "reason": season.get("reason"),
            "complete": bool(season.get("complete")), "line": line, "nodes": node_groups(rows),
            "candidates": [_candidate_text(c) for c in candidates[:MAX_CANDIDATES]],
            "more_candidates": max(0, len(candidates) - MAX_CANDIDATES), "problem": None}


def blank(problem: str) -> dict:
    """A panel that says why it shows nothing."""
    return {"target": None, "project": None, "since": None, "reason": None, "complete": False,
            "line": "season: not shown", "nodes": [], "candidates": [], "more_candidates": 0,
            "problem": problem[:300]}


# ---- `indisync status`: plain lines, times in UTC as its night line -------------------------------
def status_lines(node: str, season: dict | None) -> list[str]:
    """'season (ota1): M51 (spring) since 22:41:07 UTC: <why>' and one aligned line per OTA and filter."""
    if not isinstance(season, dict) or not season:
        return []
    target = season.get("target")
    since = season.get("since")
    when = f" since {since[11:19]} UTC" if isinstance(since, str) and len(since) >= 19 else ""
    what = (f"{target}" + (f" ({season['project']})" if season.get("project") else "")
            + (" complete" if season.get("complete") else "")) if target else "no target now"
    lines = [f"season ({node}): {what}{when}: {season.get('reason') or '-'}"]
    rows = progress_rows(season.get("progress")) if target else []
    if not rows:
        return lines
    extra = [k for k in ("pending", "surplus") if any(r[k] for r in rows)]
    header = ["OTA", "FILTER", "ACCEPTED/DESIRED", "REJECTED", *(k.upper() for k in extra)]
    table = [header] + [[r["node"], r["filter"],
                         (f"{r['accepted']}/{r['desired']}" + (" met" if r["met"] else "")) if r["in_plan"]
                         else f"{r['accepted']} (not in plan)",
                         str(r["rejected"]), *(str(r[k]) if r[k] else "-" for k in extra)] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    return lines
