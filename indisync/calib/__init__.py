"""Calibration frames (issue 17): sky flats at dusk and dawn, panel flats and the dark library.

Planning is pure (``needs``: which sets the night record asks for; ``ramp``: the sky's exposure
ramp; ``order``: the filters in the order the sky allows; ``panel``: the brightness search), the
library is a node's own SQLite file (``library``), and the taking happens on each node
(indisync.node.calibrating) through the typed ``flats`` and ``darks`` commands (indisync.contracts),
asked for by the night (indisync.night.actions.flats, .calibrate) or by hand (`indisync flats`,
`indisync darks`).
"""
