"""Instrument timbres: plucked/struck notes, harmonic wavetables and sung vowels.

Three kinds of sound source, each cheap to render at 16 kHz:
- plucked and struck strings (piano, harpsichord, guitars, basses, sitar): a sum of partials,
  each decaying faster the higher it is, shaped by the pluck position (the spectrum a
  Karplus-Strong string produces, without its tuning error); one note per pitch is rendered
  once per process and reused;
- sustained instruments (organ, bowed strings, brass, winds, synths, accordion, voices): one
  period of a harmonic spectrum per octave band (band-limited below Nyquist), read by the
  renderer at any pitch with an envelope;
- sung vowels: a glottal spectrum shaped by the first three formants of a vowel.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from study.data.corpus.drums import band

TABLE_SIZE = 2048  # samples in one period of a wavetable (a power of two: indices wrap by masking)
BAND_LOW = 24  # MIDI note where the first octave band of a wavetable starts
N_BANDS = 8


def hz(midi) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def band_of(midi) -> np.ndarray:
    """Octave band of a wavetable for each MIDI pitch."""
    return np.clip((np.asarray(midi) - BAND_LOW) // 12, 0, N_BANDS - 1).astype(np.int64)


# ---- plucked and struck strings ----------------------------------------------------------------
@dataclass(frozen=True)
class Plucked:
    seconds: float  # rendered length (a note is cut to its duration plus a release)
    decay: float  # time constant of the fundamental at 110 Hz (s)
    slope: float  # upper partials decay (1 + slope (h - 1)) times faster
    tilt: float  # partial amplitudes fall as h ** -tilt
    pluck: float = 0.0  # pluck position along the string (0: none): notches harmonics at multiples of 1/pluck
    inharmonicity: float = 0.0  # piano-string stiffness B: f_h = h f0 sqrt(1 + B h^2)
    max_harmonics: int = 30
    noise: float = 0.0  # level of the hammer/pick noise at the onset
    beating: float = 0.0  # detuning (Hz) of a second string, as in a piano's unison strings
    buzz: float = 0.0  # sitar's bridge buzz: extra bright partials that linger


PLUCKED = {
    "piano": Plucked(2.5, 1.6, 0.35, 1.1, pluck=0.12, inharmonicity=3e-4, noise=0.05, beating=0.4),
    "piano_mellow": Plucked(2.5, 1.8, 0.6, 1.5, pluck=0.12, inharmonicity=2e-4, noise=0.03, beating=0.3),
    "piano_bright": Plucked(2.5, 1.4, 0.25, 0.8, pluck=0.1, inharmonicity=4e-4, noise=0.08, beating=0.6),
    "harpsichord": Plucked(2.0, 1.2, 0.08, 0.45, pluck=0.08, noise=0.1, max_harmonics=40),
    "guitar_nylon": Plucked(2.0, 0.9, 0.5, 1.3, pluck=0.18, noise=0.04),
    "guitar_steel": Plucked(2.0, 1.1, 0.25, 0.9, pluck=0.15, noise=0.06, beating=0.2),
    "guitar_electric": Plucked(2.0, 1.4, 0.3, 1.0, pluck=0.22, noise=0.02),
    "bass_upright": Plucked(1.5, 0.7, 0.8, 1.4, pluck=0.25, noise=0.05, max_harmonics=14),
    "bass_electric": Plucked(1.8, 1.5, 0.5, 1.2, pluck=0.2, noise=0.02, max_harmonics=18),
    "sitar": Plucked(2.5, 1.5, 0.04, 0.5, pluck=0.07, noise=0.05, buzz=0.6, max_harmonics=40),
}


@lru_cache(maxsize=None)
def plucked_note(recipe: str, midi: int, sample_rate: int) -> np.ndarray:
    """One note at velocity 1 (peak about 1), deterministic for (recipe, pitch, rate)."""
    timbre = PLUCKED[recipe]
    f0 = float(hz(midi))
    n = int(timbre.seconds * sample_rate)
    t = np.arange(n, dtype=np.float32) / sample_rate
    h = np.arange(1, timbre.max_harmonics + 1, dtype=np.float64)
    freqs = h * f0 * np.sqrt(1.0 + timbre.inharmonicity * h ** 2)
    keep = freqs < 0.45 * sample_rate
    h, freqs = h[keep], freqs[keep]
    amps = h ** -timbre.tilt
    if timbre.pluck:
        amps = amps * (0.15 + np.abs(np.sin(np.pi * h * timbre.pluck)))
    decay = timbre.decay * (f0 / 110.0) ** -0.4 / (1.0 + timbre.slope * (h - 1.0))
    if timbre.buzz:
        decay = np.where(h > 6, decay * (1.0 + timbre.buzz * 3.0), decay)
        amps = np.where(h > 6, amps * (1.0 + timbre.buzz), amps)
    rng = np.random.default_rng([midi, len(recipe), sum(map(ord, recipe))])
    phases = rng.uniform(0, 2 * np.pi, len(h)).astype(np.float32)
    note = np.zeros(n, dtype=np.float32)
    for k in range(len(h)):  # one partial at a time, only while it is audible (> -80 dB)
        length = min(n, int(9.2 * decay[k] * sample_rate) + 1)
        span = t[:length]
        note[:length] += np.float32(amps[k]) * np.exp(span * np.float32(-1.0 / decay[k])) * np.sin(
            span * np.float32(2 * np.pi * freqs[k]) + phases[k])
    if timbre.beating:
        note *= 1.0 + 0.15 * np.cos(2 * np.pi * timbre.beating * t)
    if timbre.noise:
        burst = rng.standard_normal(n).astype(np.float32) * np.exp(-t / 0.004)
        note += timbre.noise * float(np.abs(note).max()) * burst
    attack = np.minimum(t / 0.002, 1.0)  # 2 ms: no click
    note *= attack
    return (note / np.abs(note).max()).astype(np.float32)


# ---- sustained instruments: band-limited wavetables --------------------------------------------
def _organ(h, f, variant):
    drawbars = ({1: 1.0, 2: 0.9, 3: 0.7, 4: 0.5, 6: 0.3, 8: 0.35},  # jazz/rock tonewheel
                {1: 1.0, 2: 0.6, 4: 0.35, 8: 0.2, 16: 0.1},  # church flue pipes
                {1: 1.0, 2: 0.8, 3: 0.8, 4: 0.4, 5: 0.3, 6: 0.3, 8: 0.5, 10: 0.2})[variant % 3]
    return np.array([drawbars.get(int(k), 0.0) for k in h])


def _strings(h, f, variant):
    body = 1.0 + 1.5 * np.exp(-((f - 450.0) / 200.0) ** 2) + 1.0 * np.exp(-((f - 2500.0) / 700.0) ** 2)
    return h ** -(1.0 + 0.15 * variant) * body


def _brass(h, f, variant):
    cutoff = (6.0, 10.0, 16.0)[variant % 3]  # harmonics: soft, medium, loud (louder is brighter)
    return h ** -0.6 / (1.0 + (h / cutoff) ** 4) * (1.0 + 0.8 * np.exp(-((f - 1200.0) / 500.0) ** 2))


def _winds(h, f, variant):
    kind = variant % 4
    if kind == 0:  # flute: almost a sine
        return np.where(h == 1, 1.0, 0.25 * h ** -2.0)
    if kind == 1:  # clarinet: odd harmonics
        return np.where(h % 2 == 1, h ** -1.0, 0.08 * h ** -1.0)
    if kind == 2:  # saxophone: rich with a formant
        return h ** -0.8 * (1.0 + 2.0 * np.exp(-((f - 1500.0) / 600.0) ** 2))
    return h ** -0.7 * (1.0 + 1.5 * np.exp(-((f - 2000.0) / 800.0) ** 2))  # harmonica: reedy


def _synth(h, f, variant):
    kind = variant % 3
    if kind == 0:  # sawtooth
        return 1.0 / h
    if kind == 1:  # square
        return np.where(h % 2 == 1, 1.0 / h, 0.0)
    return np.abs(np.sin(np.pi * h * 0.25)) / h  # 25 % pulse


def _pad(h, f, variant):
    cutoff = (900.0, 1500.0, 2500.0)[variant % 3]
    return (1.0 / h) / (1.0 + (f / cutoff) ** 4)


def _accordion(h, f, variant):
    return h ** -0.5 / (1.0 + (f / 3500.0) ** 2)


def _synth_bass(h, f, variant):
    return (1.0 / h) / (1.0 + (f / (600.0 + 400.0 * (variant % 3))) ** 4)


def _power_guitar(h, f, variant):
    return h ** -0.9 * (1.0 + np.exp(-((f - 1800.0) / 900.0) ** 2))


def _drone(h, f, variant):
    return h ** -0.5 * (1.0 + 0.5 * np.cos(h))  # tanpura: a bright, buzzing spectrum


SPECTRA = {"organ": _organ, "strings": _strings, "brass": _brass, "winds": _winds, "synth": _synth, "pad": _pad,
           "accordion": _accordion, "synth_bass": _synth_bass, "power_guitar": _power_guitar, "drone": _drone}


def _periods(amps: np.ndarray, size: int) -> np.ndarray:
    """One period sum_h amps[..., h-1] sin(2 pi h k / size), by inverse FFT (no BLAS: same bits at any thread count)."""
    spectrum = np.zeros(amps.shape[:-1] + (size // 2 + 1,), dtype=np.complex128)
    spectrum[..., 1:amps.shape[-1] + 1] = -0.5j * size * amps
    return np.fft.irfft(spectrum, n=size, axis=-1)


@lru_cache(maxsize=None)
def wavetable(recipe: str, variant: int, sample_rate: int) -> np.ndarray:
    """One period per octave band, (N_BANDS, TABLE_SIZE) float32, peak 1 in every band."""
    spectrum = SPECTRA[recipe]
    tables = np.zeros((N_BANDS, TABLE_SIZE))
    for band in range(N_BANDS):
        top = float(hz(BAND_LOW + 12 * (band + 1)))  # highest pitch the band plays
        centre = float(hz(BAND_LOW + 12 * band + 6))
        count = max(1, min(64, int(0.45 * sample_rate / top)))
        h = np.arange(1, count + 1, dtype=np.float64)
        amps = spectrum(h, h * centre, variant)
        tables[band] = _periods(amps, TABLE_SIZE)
        tables[band] /= np.abs(tables[band]).max()
    return tables.astype(np.float32)


# ---- sung vowels ------------------------------------------------------------------------------------
VOWELS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010), "o": (570, 840, 2410),
          "u": (300, 870, 2240)}
VOWEL_NAMES = tuple(VOWELS)
_FORMANT_GAIN = np.array([1.0, 0.5, 0.25])
_FORMANT_WIDTH = np.array([90.0, 110.0, 160.0])
VOICE_TABLE = 1024


def vowel_tables(f0: np.ndarray, vowel: np.ndarray, formant_scale: float, sample_rate: int,
                 breathiness: float = 0.0) -> np.ndarray:
    """One period of a sung vowel per note, (n_notes, VOICE_TABLE) float32.

    The glottal source falls 12 dB an octave; each harmonic is weighted by the vowel's formant
    envelope at its frequency, which is what makes the timbre a voice rather than an instrument.
    """
    count = 48
    h = np.arange(1, count + 1, dtype=np.float64)
    freqs = f0[:, None] * h[None, :]  # (notes, harmonics)
    formants = np.array([VOWELS[name] for name in VOWEL_NAMES])[vowel] * formant_scale  # (notes, 3)
    distance = (freqs[:, :, None] - formants[:, None, :]) / _FORMANT_WIDTH
    envelope = (_FORMANT_GAIN / (1.0 + distance ** 2)).sum(axis=2) + 0.02
    amps = envelope * h ** -(1.0 - 0.5 * breathiness) * (freqs < 0.45 * sample_rate)
    tables = _periods(amps, VOICE_TABLE)
    tables /= np.abs(tables).max(axis=1, keepdims=True)
    return tables.astype(np.float32)


@lru_cache(maxsize=None)
def consonant(kind: int, sample_rate: int) -> np.ndarray:
    """The noise of a consonant that starts a sung syllable: s, t, k or h (peak 1)."""
    seconds, low, high, attack = ((0.09, 4000.0, 7800.0, 0.02), (0.015, 500.0, 7800.0, 0.0005),
                                  (0.03, 1500.0, 3200.0, 0.001), (0.06, 400.0, 2500.0, 0.01))[kind]
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    noise = band(np.random.default_rng(kind + 101).standard_normal(n), low, high, sample_rate)
    shaped = noise * np.minimum(t / attack, 1.0) * np.exp(-t / (seconds / 3))
    return (shaped / np.abs(shaped).max()).astype(np.float32)
