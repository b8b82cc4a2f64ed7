"""A device's ST4 guide port: timed guide pulses through its TELESCOPE_TIMED_GUIDE_NS/WE.

Guide cameras with an ST4 jack (cabled to the mount's autoguider port) offer the same two properties
as a mount; ``guider.pulse_via: camera`` sends the guider's pulses there instead of to the mount.
"""

from __future__ import annotations

from ..errors import DeviceError
from .device import IndiDevice
from .mount import send_guide_pulse


class GuidePort(IndiDevice):
    key_properties = ("TELESCOPE_TIMED_GUIDE_NS", "TELESCOPE_TIMED_GUIDE_WE")

    def pulse_guide(self, direction: str, ms: int) -> None:
        """Pulse ``direction`` (N, S, E, W) for ``ms`` milliseconds; waits for the driver's answer."""
        send_guide_pulse(self.client, self.name, direction, ms, self.property_timeout)

def open_guide_port(client, name: str, property_timeout: float) -> GuidePort:
    """The ST4 port of device ``name`` (already connected through ``client``), or DeviceError saying why not."""
    try:
        return GuidePort(client, name, property_timeout).connect()
    except DeviceError as exc:
        raise DeviceError(f"{name} has no usable ST4 guide port ({exc}); set guider.pulse_via: mount") from None
