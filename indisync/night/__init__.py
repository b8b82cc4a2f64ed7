"""The night: the pure state machine (machine.py, its vocabulary in state.py and events.py, meridian.py), its plan and window (planning.py), and
the executor (executor.py) that runs the machine's actions (actions/, one module each) on a typed
``Rig`` (rig.py) under tokens bound to the state that started them (token.py), with one arbiter for
mount and dome motion (arbiter.py).

machine.py, meridian.py and settings.py import neither PyIndi, paho nor astropy and never read the
clock; the executor talks to hardware only through the Rig.
"""
