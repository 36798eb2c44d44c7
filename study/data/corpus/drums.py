"""Drum and percussion sounds and the rhythm patterns they play (§3 rhythmic-feel tags).

Each hit is synthesised once per process (deterministic noise), and patterns are written on a
grid of 12 ticks a beat (8ths, 16ths and triplets all fall on it).  Acoustic kits and drum
machines differ in their sounds (a pitched 808 kick and clap against a stick-on-skin snare);
styles differ in where the kick, snare and cymbals fall, which is what the back-beat,
four-on-the-floor, swing and shuffle tags hear.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

TICKS_PER_BEAT = 12


def _noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def band(x: np.ndarray, low: float | None, high: float | None, sample_rate: int) -> np.ndarray:
    """Second-order Butterworth band-, high- or low-pass; edges above Nyquist are pulled below it."""
    # imported where used: scipy.signal takes a second to import, which every `study` command (even
    # `study tag`, which never renders audio) would otherwise pay through the dataset registry
    from scipy import signal

    nyquist = sample_rate / 2
    top = min(high / nyquist, 0.99) if high else None
    bottom = min(low / nyquist, 0.9) if low else None
    if bottom and top:
        sos = signal.butter(2, [min(bottom, 0.5 * top), top], btype="band", output="sos")
    elif bottom:
        sos = signal.butter(2, bottom, btype="high", output="sos")
    else:
        sos = signal.butter(2, top, btype="low", output="sos")
    return signal.sosfilt(sos, x)


def _sweep(t: np.ndarray, start: float, end: float, time: float, sample_rate: int) -> np.ndarray:
    """A sine whose pitch falls from ``start`` to ``end`` Hz (kick drums, toms, tabla)."""
    freq = end + (start - end) * np.exp(-t / time)
    return np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)


def _metal(t: np.ndarray, freqs, sample_rate: int) -> np.ndarray:
    """Inharmonic square waves: the 808's cymbal and cowbell recipe."""
    return sum(np.sign(np.sin(2 * np.pi * f * t)) for f in freqs)


@lru_cache(maxsize=None)
def hit(name: str, sample_rate: int) -> np.ndarray:
    """One drum or percussion hit at full velocity (peak 1)."""
    seconds = {"kick_808": 1.0, "ride": 1.2, "crash": 1.6, "triangle": 1.0, "hat_open": 0.4,
               "hat_808_open": 0.35, "snare_brush": 0.4}.get(name, 0.5)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    noise = _noise(n, seed=sum(map(ord, name)))
    decay = lambda tau: np.exp(-t / tau)  # noqa: E731
    sr = sample_rate
    recipes = {
        "kick": lambda: _sweep(t, 130, 52, 0.03, sr) * decay(0.22) + 0.3 * band(noise, None, 2000, sr) * decay(0.004),
        "kick_jazz": lambda: _sweep(t, 110, 65, 0.04, sr) * decay(0.18),
        "kick_808": lambda: np.tanh(1.5 * _sweep(t, 90, 48, 0.05, sr) * decay(0.55)),
        "kick_909": lambda: _sweep(t, 230, 55, 0.015, sr) * decay(0.2) + 0.4 * band(noise, 1000, 6000, sr) * decay(0.003),
        "snare": lambda: (0.6 * np.sin(2 * np.pi * 185 * t) + 0.3 * np.sin(2 * np.pi * 330 * t)) * decay(0.06)
        + band(noise, 1200, 7500, sr) * decay(0.12),
        "snare_brush": lambda: band(noise, 2000, 7500, sr) * np.minimum(t / 0.05, 1.0) * decay(0.12),
        "snare_808": lambda: 0.5 * np.sin(2 * np.pi * 210 * t) * decay(0.05) + band(noise, 3000, None, sr) * decay(0.09),
        "clap": lambda: band(noise, 800, 3500, sr) * sum(
            (t >= d) * np.exp(-np.clip(t - d, 0, None) / (0.006 if d < 0.02 else 0.12)) for d in (0.0, 0.011, 0.022)),
        "rim": lambda: (np.sin(2 * np.pi * 1700 * t) + 0.6 * band(noise, 2000, 6000, sr)) * decay(0.012),
        "hat": lambda: band(noise, 6000, None, sr) * decay(0.03),
        "hat_open": lambda: band(noise, 5500, None, sr) * decay(0.18),
        "hat_808": lambda: band(_metal(t, (205.3, 304.4, 369.6, 522.7, 540.0, 800.0), sr), 6000, None, sr) * decay(0.035),
        "hat_808_open": lambda: band(_metal(t, (205.3, 304.4, 369.6, 522.7, 540.0, 800.0), sr), 5500, None, sr) * decay(0.15),
        "ride": lambda: (0.5 * band(_metal(t, (421.0, 583.0, 777.0, 1170.0), sr), 3000, None, sr)
                         + band(noise, 4000, None, sr)) * decay(0.5) * (1 + 2 * decay(0.01)),
        "crash": lambda: band(noise, 2500, None, sr) * decay(0.6),
        "tom_high": lambda: _sweep(t, 240, 180, 0.05, sr) * decay(0.18),
        "tom_low": lambda: _sweep(t, 150, 105, 0.06, sr) * decay(0.25),
        "conga_high": lambda: _sweep(t, 380, 330, 0.02, sr) * decay(0.12) + 0.2 * band(noise, 1000, 5000, sr) * decay(0.005),
        "conga_low": lambda: _sweep(t, 260, 220, 0.03, sr) * decay(0.16),
        "clave": lambda: np.sin(2 * np.pi * 2500 * t) * decay(0.025),
        "cowbell": lambda: band(_metal(t, (540.0, 800.0), sr), 400, 4000, sr) * decay(0.12),
        "shaker": lambda: band(noise, 4000, 7800, sr) * np.minimum(t / 0.015, 1.0) * decay(0.03),
        "tabla_na": lambda: sum(np.sin(2 * np.pi * 520 * k * t) / k for k in (1, 2, 3)) * decay(0.25),
        "tabla_ge": lambda: _sweep(t, 80, 120, 0.15, sr) * decay(0.35),
        "triangle": lambda: sum(np.sin(2 * np.pi * f * t) for f in (1250.0, 3420.0, 5230.0)) * decay(0.4),
        "bodhran": lambda: _sweep(t, 120, 85, 0.04, sr) * decay(0.15) + 0.2 * band(noise, 500, 3000, sr) * decay(0.01),
    }
    if name not in recipes:
        raise KeyError(f"drums.py: unknown hit {name!r}; known: {sorted(recipes)}")
    sound = recipes[name]() * np.minimum(t / 0.0005, 1.0)
    return (sound / np.abs(sound).max()).astype(np.float32)


# kit -> the hit played for each drum of a pattern
KITS = {
    "rock": dict(kick="kick", snare="snare", hat="hat", hat_open="hat_open", ride="ride", crash="crash",
                 tom_high="tom_high", tom_low="tom_low", rim="rim"),
    "jazz": dict(kick="kick_jazz", snare="snare", hat="hat", hat_open="hat_open", ride="ride", crash="crash",
                 tom_high="tom_high", tom_low="tom_low", rim="rim"),
    "brushes": dict(kick="kick_jazz", snare="snare_brush", hat="hat", hat_open="hat_open", ride="ride",
                    crash="crash", tom_high="tom_high", tom_low="tom_low", rim="snare_brush"),
    "808": dict(kick="kick_808", snare="clap", hat="hat_808", hat_open="hat_808_open", ride="hat_808_open",
                crash="crash", tom_high="conga_high", tom_low="conga_low", rim="rim"),
    "909": dict(kick="kick_909", snare="snare_808", hat="hat_808", hat_open="hat_808_open", ride="ride",
                crash="crash", tom_high="tom_high", tom_low="tom_low", rim="rim"),
}


def _groups(beats: int) -> list[int]:
    """Beat groups of a bar: where the kick leans and the snare answers."""
    return {4: [2, 2], 3: [3], 2: [1, 1], 5: [3, 2], 7: [2, 2, 3]}.get(beats, [beats])


def _downbeats(beats: int) -> tuple[list[int], list[int]]:
    """(kick beats, back-beats) of a bar, by beat groups."""
    starts = np.cumsum([0] + _groups(beats)[:-1]).tolist()
    if beats == 2:
        return [0], [1]
    if beats == 3:
        return [0], [1, 2]
    back = [s + g - 1 for s, g in zip(starts, _groups(beats))]
    return starts, back


def drum_pattern(style: str, beats: int, subdivision: int, n_bars: int, intensity: float, backbeat: float,
                 syncopation: bool, electronic: bool, rng: np.random.Generator) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Hits of a drum part: (ticks, drum names, velocities); drum names are kit roles ('kick', 'snare' ...)."""
    bar = beats * TICKS_PER_BEAT
    beat_ticks = np.arange(beats) * TICKS_PER_BEAT
    step = TICKS_PER_BEAT // subdivision
    eighths = np.arange(0, bar, step if subdivision == 3 else 6)
    sixteenths = np.arange(0, bar, 4 if subdivision == 3 else 3)
    kicks, backs = _downbeats(beats)
    kicks, backs = [k * TICKS_PER_BEAT for k in kicks], [b * TICKS_PER_BEAT for b in backs]
    snare_level = 0.45 + 0.55 * backbeat if beats in (2, 4) else 0.5
    hats = sixteenths if intensity > 0.7 else eighths
    bar_events: list[tuple[int, str, float]] = []
    add = lambda ticks, drum, level: bar_events.extend((int(t), drum, level) for t in np.atleast_1d(ticks))  # noqa: E731

    if style in ("rock", "pop", "ballad", "folk", "shuffle", "fusion", "old_school", "punk", "metal"):
        add(kicks, "kick", 1.0)
        add(backs, "snare", snare_level if style != "folk" else 0.5 * snare_level)
        if style == "punk":
            add(beat_ticks, "kick", 0.9)
            add(eighths, "crash" if intensity > 0.9 else "hat", 0.6)
        elif style == "metal":
            add(sixteenths if intensity > 0.85 else eighths, "kick", 0.8)
            add(beat_ticks, "ride", 0.5)
        elif style == "ballad":
            add(beat_ticks, "hat", 0.4)
        elif style == "folk":
            add(beat_ticks, "hat", 0.35)
        elif style == "fusion":
            add(sixteenths, "hat", 0.45)
            add(rng.choice(sixteenths, size=3, replace=False), "kick", 0.7)
            add(rng.choice(sixteenths, size=2, replace=False), "snare", 0.2)
        else:
            add(hats, "hat", 0.55)
        if syncopation and style in ("rock", "pop", "old_school"):
            add([b - 6 for b in backs[1:]] or [bar - 6], "kick", 0.75)
    elif style in ("four_floor", "house", "techno", "disco"):
        add(beat_ticks, "kick", 1.0)
        if style != "techno":
            add(backs, "snare", snare_level)
        add(beat_ticks + 6, "hat_open", 0.5 if style != "four_floor" else 0.35)
        add(sixteenths if style != "four_floor" else eighths, "hat", 0.35)
        if style == "techno":
            add(rng.choice(sixteenths, size=2, replace=False) + 0, "rim", 0.4)
    elif style in ("boom_bap", "gfunk"):
        add([0], "kick", 1.0)
        add(rng.choice([18, 21, 30, 33], size=2, replace=False) if beats == 4 else kicks[1:], "kick", 0.85)
        add(backs, "snare", snare_level)
        add(eighths if style == "boom_bap" else sixteenths, "hat", 0.45)
    elif style in ("jazz", "brushes"):
        skips = [b - 6 + TICKS_PER_BEAT for b in beat_ticks[1::2]] if subdivision == 2 else []
        add(beat_ticks, "ride" if style == "jazz" else "snare", 0.5)
        add(skips, "ride" if style == "jazz" else "snare", 0.35)
        add(backs, "hat", 0.35)
        add(beat_ticks, "kick", 0.18)
        add(rng.choice(eighths, size=2, replace=False), "snare" if style == "jazz" else "rim", 0.25)
    elif style == "one_drop":
        third = (beats // 2) * TICKS_PER_BEAT
        add([third], "kick", 1.0)
        add([third], "rim", 0.8)
        add(eighths, "hat", 0.4)
    elif style in ("latin", "bossa"):
        if beats == 4:
            add([0, 18, 24, 42] if style == "bossa" else [18, 36], "kick", 0.7)
            add([0, 18, 36] if style == "bossa" else [12, 36], "rim", 0.55)
        else:
            add(kicks, "kick", 0.7)
            add(backs, "rim", 0.5)
        add(eighths, "hat", 0.3)
    elif style == "ambient":
        add([0], "kick", 0.6)
        add(beat_ticks, "hat", 0.25)
    elif style != "none":
        raise ValueError(f"drums.py: unknown drum style {style!r}")

    ticks, names, levels = _repeat_bars(bar_events, bar, n_bars)
    if style not in ("jazz", "brushes", "ambient", "none"):
        ticks, names, levels = _phrase_marks(ticks, names, levels, bar, beats, n_bars, electronic)
    jitter = 0.0 if electronic else 0.08
    velocity = np.clip(levels * (0.55 + 0.45 * intensity) * (1.0 + jitter * rng.standard_normal(len(levels))), 0.05, 1.0)
    return ticks, names, velocity


def _repeat_bars(events, bar: int, n_bars: int):
    ticks = np.array([t for t, _, _ in events], dtype=np.int64)
    offsets = np.repeat(np.arange(n_bars) * bar, len(events))
    return (np.tile(ticks, n_bars) + offsets, [name for _, name, _ in events] * n_bars,
            np.tile(np.array([level for _, _, level in events], dtype=np.float64), n_bars))


def _phrase_marks(ticks, names, levels, bar: int, beats: int, n_bars: int, electronic: bool):
    """A crash at the start of each 4-bar phrase and a fill on the last beat before it."""
    phrase_starts = np.arange(0, n_bars, 4) * bar
    fill_start = phrase_starts[1:] - TICKS_PER_BEAT
    fill = (fill_start[:, None] + np.arange(0, TICKS_PER_BEAT, 3)[None, :]).ravel()
    keep = ~np.isin(ticks // TICKS_PER_BEAT, fill_start // TICKS_PER_BEAT)
    fill_names = (["snare"] * 4 if electronic else ["tom_high", "tom_high", "tom_low", "tom_low"]) * len(fill_start)
    return (np.concatenate([ticks[keep], phrase_starts, fill]),
            [n for n, k in zip(names, keep) if k] + ["crash"] * len(phrase_starts) + fill_names,
            np.concatenate([levels[keep], np.full(len(phrase_starts), 0.7), np.full(len(fill), 0.6)]))


def percussion_pattern(style: str, beats: int, subdivision: int, n_bars: int, intensity: float,
                       rng: np.random.Generator) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Hand percussion (clave and congas, shaker, tabla, triangle, bodhran): (ticks, hit names, velocities)."""
    bar = beats * TICKS_PER_BEAT
    step = 4 if subdivision == 3 else 6
    eighths = np.arange(0, bar, step)
    events: list[tuple[int, str, float]] = []
    add = lambda ticks, hit_name, level: events.extend((int(t), hit_name, level) for t in np.atleast_1d(ticks))  # noqa: E731
    if style == "clave":
        if beats == 4:  # son clave 3-2 over two bars, conga tumbao
            add([0, 18, 36], "clave", 0.8)
            add([bar + 12, bar + 24], "clave", 0.8)
            pattern_bars = 2
        else:
            add(np.arange(beats) * TICKS_PER_BEAT, "clave", 0.7)
            pattern_bars = 1
        for b in range(pattern_bars):
            add(b * bar + np.arange(beats) * TICKS_PER_BEAT + 6, "conga_high", 0.6)
            add([b * bar + bar - 6, b * bar + bar - 3], "conga_low", 0.7)
        add(np.arange(0, bar * pattern_bars, 3), "shaker", 0.25)
        bar *= pattern_bars
        n_bars = (n_bars + pattern_bars - 1) // pattern_bars
    elif style == "shaker":
        add(np.arange(0, bar, 3), "shaker", 0.3)
        add(eighths[1::2], "shaker", 0.5)
    elif style == "tabla":
        for beat in range(beats):
            start = beat * TICKS_PER_BEAT
            add([start], "tabla_ge", 0.9 if beat in (0, beats // 2) else 0.6)
            add([start], "tabla_na", 0.7)
            add(start + rng.choice([3, 6, 9], size=2, replace=False), "tabla_na", 0.45)
    elif style == "triangle":
        add(eighths, "triangle", 0.3)
        add(eighths[1::2], "triangle", 0.5)
    elif style == "bodhran":
        add(np.arange(0, bar, 4 if subdivision == 3 else 6), "bodhran", 0.45)
        add(np.arange(beats) * TICKS_PER_BEAT, "bodhran", 0.9)
    else:
        raise ValueError(f"drums.py: unknown percussion style {style!r}")
    ticks, names, levels = _repeat_bars(events, bar, n_bars)
    velocity = np.clip(levels * (0.6 + 0.4 * intensity) * (1.0 + 0.08 * rng.standard_normal(len(levels))), 0.05, 1.0)
    return ticks, names, velocity
