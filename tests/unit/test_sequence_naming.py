import os

import numpy as np
import pytest
from astropy.io import fits

from indisync.sequence.headers import apply_frame_header
from indisync.sequence.naming import (
    frame_path,
    frame_stem,
    next_free_path,
    sanitize_field,
    save_frame,
    write_fits_atomically,
)

TEMPLATE = "{node}_{target}_{filter}_{exposure}s_{seq:04d}"


def hdu(value=1):
    return fits.PrimaryHDU(np.full((4, 5), value, dtype=np.uint16))


def test_default_template():
    stem = frame_stem(TEMPLATE, node="ota1", target="M42", filter="Red", exposure=600.0, seq=7)
    assert stem == "ota1_M42_Red_600s_0007"
    assert frame_stem(TEMPLATE, node="n", target="t", filter="B", exposure=0.5, seq=1) == "n_t_B_0.5s_0001"
    assert frame_stem("{exposure:.1f}", exposure=2) == "2.0"


@pytest.mark.parametrize("evil", ["../../etc/passwd", "..", "a/b", "a\\b", "..\\x", ".hidden", "x/../y"])
def test_fields_cannot_escape_the_directory(evil):
    stem = frame_stem(TEMPLATE, node="n", target=evil, filter=evil, exposure=1, seq=1)
    assert "/" not in stem and "\\" not in stem and ".." not in stem
    assert not stem.startswith(".")
    assert os.path.dirname(os.path.normpath(os.path.join("/img", stem))) == "/img"


def test_sanitize_keeps_plain_names():
    assert sanitize_field("H_Alpha") == "H_Alpha"
    assert sanitize_field("NGC 2024") == "NGC_2024"
    assert sanitize_field(None) == ""


def test_template_and_stem_are_rejected_if_unsafe(tmp_path):
    with pytest.raises(ValueError, match="storage.filename"):
        frame_stem("../{node}", node="n")
    with pytest.raises(ValueError, match="unknown"):
        frame_stem(TEMPLATE, colour="red")
    with pytest.raises(ValueError):
        next_free_path(tmp_path, "../x")


def test_next_free_path_never_returns_an_existing_file(tmp_path):
    (tmp_path / "a.fits").write_bytes(b"x")
    (tmp_path / "a_2.fits").write_bytes(b"x")
    assert next_free_path(tmp_path, "a") == tmp_path / "a_3.fits"
    assert next_free_path(tmp_path, "b") == tmp_path / "b.fits"


def test_frame_path_increments_seq(tmp_path):
    fields = dict(node="n", target="t", filter="R", exposure=60)
    first = frame_path(tmp_path, TEMPLATE, seq=1, **fields)
    first.write_bytes(b"x")
    assert frame_path(tmp_path, TEMPLATE, seq=1, **fields).name == "n_t_R_60s_0002.fits"
    assert frame_path(tmp_path, "{node}", node="n").name == "n.fits"


def test_write_never_overwrites(tmp_path):
    path = tmp_path / "f.fits"
    write_fits_atomically(path, hdu(1))
    with pytest.raises(FileExistsError):
        write_fits_atomically(path, hdu(2))
    assert fits.getdata(path)[0, 0] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["f.fits"], "temp file removed"


def test_save_frame_keeps_every_frame(tmp_path):
    fields = dict(node="n", target="M42", filter="Red", exposure=60, seq=1)
    paths = [save_frame(tmp_path / "img", TEMPLATE, hdu(i), **fields) for i in range(3)]
    assert [p.name for p in paths] == ["n_M42_Red_60s_0001.fits", "n_M42_Red_60s_0002.fits", "n_M42_Red_60s_0003.fits"]
    assert [int(fits.getdata(p)[0, 0]) for p in paths] == [0, 1, 2]


def test_frame_header_keywords():
    h = hdu()
    apply_frame_header(
        h.header, node="ota2", target="M42", frame_type="light", filter_name="Red", batch=2,
        seq_index=3, exposure_id=17, focus_position=41000, focus_temperature=None, hfr=2.34567, stars=None,
    )
    assert h.header["OBJECT"] == "M42" and h.header["FILTER"] == "Red" and h.header["IMAGETYP"] == "Light Frame"
    assert h.header["NODE"] == "ota2" and h.header["BATCH"] == 2 and h.header["SEQINDEX"] == 3
    assert h.header["EXPOSID"] == 17 and h.header["FOCUSPOS"] == 41000 and h.header["HFR"] == 2.346
    assert "FOCTEMP" not in h.header and "NSTARS" not in h.header


def test_write_without_hard_links_still_never_overwrites(tmp_path, monkeypatch):
    import errno

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")  # what vfat/exfat answer

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "f.fits"
    write_fits_atomically(path, hdu(5))
    with pytest.raises(FileExistsError):
        write_fits_atomically(path, hdu(6))
    assert fits.getdata(path)[0, 0] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["f.fits"]
