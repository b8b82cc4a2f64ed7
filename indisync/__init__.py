"""indisync: the MaxIm DL multi-camera workflow on INDI, coordinated over MQTT."""

__version__ = "0.1.0"
