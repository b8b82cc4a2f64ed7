"""The rig's night on record: the night log (JSONL), image grading, and the night report.

``grading`` and ``nightlog`` are pure (no MQTT, no matplotlib); ``recorder`` subscribes through
indisync.protocol; ``report`` imports matplotlib only when it draws.
"""
