"""Slots, batches, filter rotation, refocus triggers, frame names and state files: pure and deterministic (no PyIndi, no paho)."""
