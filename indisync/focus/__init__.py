"""Autofocus: V-curve fits and their judgement (fit), the routine that sweeps, extends, checks and
restores (routine) over small device interfaces (interfaces), its records (record), and filter and
temperature offsets (offsets). Pure: no PyIndi, no paho. See README.md in this folder."""
