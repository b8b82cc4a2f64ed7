"""The project's exceptions. Each message says what went wrong and what to do about it."""


class IndisyncError(Exception):
    """Base of every error indisync raises on purpose."""


class ConfigError(IndisyncError):
    """A configuration file or value is invalid; the message names the file, the key and what is allowed."""


class DeviceError(IndisyncError):
    """An INDI device or property misbehaved: missing, ALERT state, timed out, or vanished."""


class ConnectionFailed(DeviceError):
    """No INDI server answered at the given address."""


class PropertyTimeout(DeviceError):
    """A property did not appear or did not reach OK within its timeout."""


class PropertyAlert(DeviceError):
    """The driver set a property to ALERT in answer to a request."""


class ExposureAborted(DeviceError):
    """An exposure was aborted on purpose (an abort command, unsafe weather); no frame exists."""


class ActionCancelled(IndisyncError):
    """An action was cancelled because the night left the state that started it (or a safety park
    pre-empted it). Not a failure of the device: whoever cancelled it decides what comes next."""


class UnknownFilter(IndisyncError):
    """A filter name is not on the wheel; the message lists the wheel's names."""


class FocusError(IndisyncError):
    """Autofocus could not produce a trusted result."""


class AnalysisError(IndisyncError):
    """A frame cannot be measured (not 2-D, not numeric, too small); the message says what is expected."""


class ProtocolError(IndisyncError):
    """An MQTT message was malformed, of an unknown type or version, or out of range."""


class StateError(IndisyncError):
    """A state file (sequence progress, filter rotation) is unreadable; the message names the file and the fix."""


class CommandTimeout(ProtocolError):
    """A node did not answer a command in time: it may be offline, busy or unreachable."""


class CommandFailed(ProtocolError):
    """A node answered a command with 'failed'; the message carries the node's reason."""


class GuideError(IndisyncError):
    """Guiding failed or was asked for in a state that cannot do it (no star, not calibrated, stopped)."""


class CalibrationError(GuideError):
    """Guider calibration failed: the mount did not move the star, or its axes are not trustworthy."""


class SolveError(IndisyncError):
    """A plate solve failed; the subclass says why and the message what to do."""


class NoStarsError(SolveError):
    """The frame shows too few stars to solve (clouds, closed cover, dew, a dark frame, far out of focus)."""


class NoIndexError(SolveError):
    """No astrometry.net index file covers the field's scale; the message names the package to install."""


class SolveTimeout(SolveError):
    """astrometry.net found no solution within acquire.solve_timeout and was stopped."""


class SeasonError(IndisyncError):
    """The season's targets or database: a bad target, plan or YAML file, an unknown node or filter, or a
    database that is newer, foreign or damaged; the message names the target or file, the path and the fix."""


class CalibError(IndisyncError):
    """Calibration frames cannot be taken as asked: a panel that cannot reach the ADU band, a calibration
    library that is newer, foreign or damaged; the message names the numbers or the file and the fix."""
