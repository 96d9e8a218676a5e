"""Audio input/output: read anything soundfile reads, resample with soxr, write atomically.

All waveforms in this project are float32 numpy arrays shaped ``(channels, samples)``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError, UserError

SAMPLE_RATE = 44100


def to_stereo(audio: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
    """Return ``(2, samples)``: mono is duplicated; more than two channels is an error.

    We refuse rather than downmix 5.1/multitrack input because no downmix is right
    for drums (a multitrack drum recording should be summed by the user's own mix).
    """
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.shape[0] == 1:
        return np.repeat(audio, 2, axis=0)
    if audio.shape[0] == 2:
        return audio
    raise AudioError(
        f"{path} has {audio.shape[0]} channels; drumsep-lab separates mono or stereo "
        "drum mixes, so downmix it to stereo first (e.g. ffmpeg -ac 2)."
    )


def resample(audio: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample ``(channels, samples)`` with soxr's high-quality filter."""
    if sr_in == sr_out:
        return audio.astype(np.float32, copy=False)
    out = soxr.resample(np.ascontiguousarray(audio.T), sr_in, sr_out, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def read_audio(
    path: str | os.PathLike,
    sample_rate: int | None = SAMPLE_RATE,
    stereo: bool = True,
) -> tuple[np.ndarray, int]:
    """Read a file as float32 ``(channels, samples)``.

    Resamples to ``sample_rate`` (None keeps the file's rate) and makes it stereo
    when ``stereo``. Raises :class:`AudioError` with one clear sentence for a
    missing, empty, corrupt or non-finite file.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path} does not exist.")
    if path.is_dir():
        raise AudioError(f"{path} is a directory, not an audio file.")
    if path.stat().st_size == 0:
        raise AudioError(f"{path} is empty (0 bytes).")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path} is not a readable audio file ({err}).") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path} contains no samples.")
    audio = np.ascontiguousarray(data.T)
    if not np.isfinite(audio).all():
        raise AudioError(f"{path} contains NaN or infinite samples; re-export it as PCM or clean float audio.")
    if stereo:
        audio = to_stereo(audio, path)
    if sample_rate is not None and sr != sample_rate:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return audio, sr


def check_writable_dir(directory: str | os.PathLike) -> Path:
    """Create ``directory`` if needed and make sure we can write into it, before any work starts."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as err:
        raise UserError(f"cannot write to output directory {directory} ({err.strerror}).") from None
    return directory


def atomic_path(final: Path) -> Path:
    """A temporary sibling of ``final`` that is renamed into place when complete."""
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    os.close(fd)
    return Path(tmp)


class AtomicWavWriter:
    """Stream ``(channels, n)`` blocks into a WAV that appears only once complete.

    On error or interruption the partial file is removed, so outputs are never half-written.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int, subtype: str = "FLOAT"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = atomic_path(self.path)
        self._file = sf.SoundFile(str(self._tmp), "w", samplerate=sample_rate, channels=channels,
                                  subtype=subtype, format="WAV")

    def write(self, block: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(block.T))

    def commit(self) -> None:
        self._file.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE,
                subtype: str = "FLOAT") -> None:
    """Write ``(channels, samples)`` atomically (temporary file, then rename)."""
    with AtomicWavWriter(path, sample_rate, audio.shape[0], subtype) as writer:
        writer.write(audio)
