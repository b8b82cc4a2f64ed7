"""The night as a pure state machine (machine.py) and its plan from the config (plan.py).

Nothing here imports PyIndi, paho, astropy or reads the clock: the executor in
indisync/node/night_runner.py runs the machine's actions on real devices and feeds back events.
"""
