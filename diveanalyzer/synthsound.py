"""Sounds of a synthetic session: splashes, shouts, whistles, claps and crowd murmur.

Each generator returns a mono float32 array whose peak is exactly ``level_db`` dBFS, so the
ground truth can state how loud every event is. The splash is what the audio detector looks
for (a broadband burst with a fast attack, strong above 1 kHz, decaying over a few tenths of a
second); the others are built to fool a naive detector: shouts and whistles are louder than
any splash, claps are broadband but very short, the crowd is a steady floor.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

# Vowel formants (Hz) of an open "ah"/"eh"/"oh" shout: (F1, F2, F3).
_VOWELS = ((800, 1200, 2500), (550, 1750, 2500), (500, 900, 2400))


def db_to_amp(level_db: float) -> float:
    return 10.0 ** (level_db / 20.0)


def _normalise(x: np.ndarray, level_db: float) -> np.ndarray:
    peak = float(np.max(np.abs(x))) or 1.0
    return (x * (db_to_amp(level_db) / peak)).astype(np.float32)


def _envelope(n: int, rate: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n, dtype=np.float64)
    a, r = max(1, int(attack * rate)), max(1, int(release * rate))
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    env[-r:] *= np.linspace(1.0, 0.0, r)
    return env


def splash(rng: np.random.Generator, rate: int, level_db: float) -> np.ndarray:
    """Broadband burst: ~5 ms attack, exponential decay (tau 0.1-0.25 s), droplets in the tail."""
    tau = rng.uniform(0.10, 0.25)
    length = min(1.0, 5.0 * tau)
    n = int(length * rate)
    t = np.arange(n) / rate
    env = (1.0 - np.exp(-t / 0.004)) * np.exp(-t / tau)
    noise = rng.standard_normal(n)
    high = signal.sosfilt(signal.butter(2, 900, "highpass", fs=rate, output="sos"), noise)
    low = signal.sosfilt(signal.butter(2, 400, "lowpass", fs=rate, output="sos"), noise)
    burst = (high + 0.35 * low) * env
    for _ in range(rng.integers(6, 14)):  # droplets falling back
        start = rng.integers(int(0.1 * n), n - 200)
        d = min(n - start, int(rng.uniform(0.01, 0.03) * rate))
        drop = rng.standard_normal(d) * np.exp(-np.arange(d) / (0.006 * rate))
        burst[start : start + d] += drop * rng.uniform(0.05, 0.2)
    return _normalise(burst, level_db)


def shout(rng: np.random.Generator, rate: int, level_db: float) -> np.ndarray:
    """A voiced call: harmonics of a gliding pitch shaped by vowel formants."""
    length = rng.uniform(0.4, 1.0)
    n = int(length * rate)
    t = np.arange(n) / rate
    f0_start = rng.uniform(170, 320)
    contour = f0_start * (1.0 + 0.25 * np.sin(math.pi * t / length))
    contour *= 1.0 + 0.015 * np.sin(2 * math.pi * 5.5 * t)  # vibrato
    phase = 2 * math.pi * np.cumsum(contour) / rate
    formants = _VOWELS[rng.integers(len(_VOWELS))]
    mean_f0 = float(np.mean(contour))
    voice = np.zeros(n)
    for k in range(1, int(5000 / mean_f0) + 1):
        f = k * mean_f0
        gain = sum(
            math.exp(-(((f - fc) / 130.0) ** 2)) * w
            for fc, w in zip(formants, (1, 0.7, 0.3), strict=True)
        )
        voice += (gain + 0.02) / k**0.5 * np.sin(k * phase)
    voice += 0.01 * rng.standard_normal(n)  # breath
    return _normalise(voice * _envelope(n, rate, 0.04, 0.1), level_db)


def whistle(rng: np.random.Generator, rate: int, level_db: float) -> np.ndarray:
    """A referee's pea whistle: a 2-4 kHz tone trilled at ~30 Hz, one to three blasts."""
    parts = []
    for _ in range(rng.integers(1, 4)):
        length = rng.uniform(0.25, 0.7)
        n = int(length * rate)
        t = np.arange(n) / rate
        f = rng.uniform(2200, 3600) * (1.0 + 0.03 * np.sin(2 * math.pi * rng.uniform(25, 35) * t))
        tone = np.sin(2 * math.pi * np.cumsum(f) / rate) + 0.2 * np.sin(
            4 * math.pi * np.cumsum(f) / rate
        )
        tone *= 0.75 + 0.25 * np.sin(2 * math.pi * 30 * t)
        tone += 0.03 * rng.standard_normal(n)
        parts += [
            tone * _envelope(n, rate, 0.01, 0.03),
            np.zeros(int(rng.uniform(0.1, 0.25) * rate)),
        ]
    return _normalise(np.concatenate(parts), level_db)


def claps(rng: np.random.Generator, rate: int, level_db: float) -> np.ndarray:
    """A train of 4-10 hand claps: broadband like a splash but each decays in ~15 ms."""
    count = int(rng.integers(4, 11))
    gap = rng.uniform(0.2, 0.35)
    n = int((count * gap + 0.1) * rate)
    out = np.zeros(n)
    band = signal.butter(2, (700, 5000), "bandpass", fs=rate, output="sos")
    clap_n = int(0.06 * rate)
    decay = np.exp(-np.arange(clap_n) / (rng.uniform(0.008, 0.015) * rate))
    for i in range(count):
        start = int((i * gap + rng.uniform(-0.02, 0.02) + 0.02) * rate)
        burst = signal.sosfilt(band, rng.standard_normal(clap_n)) * decay * rng.uniform(0.7, 1.0)
        out[start : start + clap_n] += burst[: n - start]
    return _normalise(out, level_db)


class Crowd:
    """Endless murmur of a pool hall: low-passed noise with a slow random swell.

    Generated block by block with filter state carried over, so any length costs little memory.
    """

    def __init__(self, rng: np.random.Generator, rate: int, level_db: float):
        self.rng, self.rate = rng, rate
        self.sos = signal.butter(2, (150, 1800), "bandpass", fs=rate, output="sos")
        self.zi = np.zeros((self.sos.shape[0], 2))
        # band-passed white noise has about 0.35 of the input's RMS
        self.gain = db_to_amp(level_db) / 0.35
        self.swell_phase = rng.uniform(0, 2 * math.pi)
        self.done = 0

    def block(self, n: int) -> np.ndarray:
        noise = self.rng.standard_normal(n)
        out, self.zi = signal.sosfilt(self.sos, noise, zi=self.zi)
        t = (self.done + np.arange(n)) / self.rate
        swell = 1.0 + 0.4 * np.sin(2 * math.pi * 0.07 * t + self.swell_phase)
        self.done += n
        return (out * swell * self.gain).astype(np.float32)


GENERATORS = {"splash": splash, "shout": shout, "whistle": whistle, "claps": claps}
