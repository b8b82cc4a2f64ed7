"""Our own sky: an INDI driver (``indi_sky_sim``) whose guide stars move by a known, sub-pixel error.

INDI 1.9.9's simulators cannot measure guiding: the Telescope Simulator republishes
EQUATORIAL_EOD_COORD only past a 0.1 s-of-time deadband, and the Guide Simulator draws every star
at whole-pixel offsets. This sky does neither:

- ``model``: the true pointing error, pure and deterministic for a seed (periodic error with
  harmonics, polar-misalignment drift, seeing wander, wind gusts, Dec backlash, guide pulses);
- ``render``: stars at sub-pixel positions (a Moffat or Gaussian PSF integrated over each pixel,
  shot, read noise and sky background) and a minimal FITS writer;
- ``indixml``: the small part of INDI's driver XML we need (definitions, updates, requests);
- ``driver``: the devices "Sky Mount" and "Sky Guider" over stdin/stdout, as ``indiserver`` runs
  any driver (``python -m indisync.sim.sky``; ``IndiServer(drivers=["indi_sky_sim"])``).

The driver imports numpy only (no astropy, no scipy).
"""
