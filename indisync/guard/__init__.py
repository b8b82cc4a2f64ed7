"""The independent safety guard (`indisync guard`): the pure decision (decide.py), its INDI side
(rig.py), the sun (sun.py) and the service (service.py). It imports nothing from indisync.night or
indisync.node, so a defect there cannot disable it.

This package's ``__init__`` imports nothing: config.py loads ``guard.settings`` cheaply.
"""
