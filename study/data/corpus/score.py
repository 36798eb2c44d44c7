"""Composition: a clip's plan becomes notes (bass line, chords, melodies) on a 12-ticks-a-beat grid.

Notes come from the key's scale and the chords of a progression, one chord a bar; melodies are
built from short motifs that repeat and answer each other, with chord tones on strong beats.
Rhythm patterns are drawn once per clip and repeated bar after bar, so meter, swing and
syncopation are heard over several seconds, not in a single frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from study.data.corpus import harmony
from study.data.corpus.drums import TICKS_PER_BEAT

T = TICKS_PER_BEAT


@dataclass
class Notes:
    """A part's notes; ``lane`` separates the simultaneous voices a sustained instrument renders."""

    tick: np.ndarray  # onset (ticks, may be fractional)
    length: np.ndarray  # ticks
    pitch: np.ndarray  # MIDI
    velocity: np.ndarray  # 0 .. 1
    lane: np.ndarray
    vowel: np.ndarray | None = None

    @staticmethod
    def join(parts: list["Notes"]) -> "Notes":
        parts = [p for p in parts if len(p.tick)]
        if not parts:
            return Notes(*(np.zeros(0) for _ in range(4)), np.zeros(0, dtype=np.int64))
        vowels = None if any(p.vowel is None for p in parts) else np.concatenate([p.vowel for p in parts])
        return Notes(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("tick", "length", "pitch",
                                                                                 "velocity", "lane")), vowels)

    def subset(self, mask: np.ndarray) -> "Notes":
        return Notes(self.tick[mask], self.length[mask], self.pitch[mask], self.velocity[mask], self.lane[mask],
                     None if self.vowel is None else self.vowel[mask])


def notes_of(tick, length, pitch, velocity, lane=0) -> Notes:
    """Notes from arrays or scalars (broadcast to the onsets)."""
    tick = np.asarray(tick, dtype=np.float64)
    shape = tick.shape
    return Notes(tick, np.broadcast_to(np.asarray(length, dtype=np.float64), shape).copy(),
                 np.broadcast_to(np.asarray(pitch, dtype=np.float64), shape).copy(),
                 np.broadcast_to(np.asarray(velocity, dtype=np.float64), shape).copy(),
                 np.broadcast_to(np.asarray(lane, dtype=np.int64), shape).copy())


@dataclass
class Frame:
    """The clip's musical frame: meter, grid, key and one chord per bar."""

    beats: int
    subdivision: int  # 2 (simple meters) or 3 (compound)
    grid: int  # melodic subdivisions per beat (2 or 4; 3 in compound meters)
    n_bars: int
    key: int
    major: bool
    chromatic: bool
    syncopation: bool
    intensity: float
    family: str
    rng: np.random.Generator
    chords: list = field(default_factory=list)  # per bar: (root pitch class, intervals)

    @property
    def bar(self) -> int:
        return self.beats * T

    def chord_pcs(self, bar: int) -> np.ndarray:
        root, intervals = self.chords[bar % len(self.chords)]
        return np.array([(root + i) % 12 for i in intervals])

    def root(self, bar: int) -> int:
        return self.chords[bar % len(self.chords)][0]

    def scale(self) -> np.ndarray:
        return (harmony.melody_scale(self.family, self.major, self.chromatic) + self.key) % 12


def make_frame(plan: dict, style, n_bars: int, rng: np.random.Generator) -> Frame:
    beats = int(plan["beats"])
    subdivision = 3 if plan["meter"] == 2 else 2
    grid = 3 if subdivision == 3 else style.grid
    frame = Frame(beats, subdivision, grid, n_bars, int(plan["key"]), bool(plan["major"]), bool(plan["chromatic"]),
                  bool(plan["syncopation"]), float(plan["intensity"]), style.progression, rng)
    chords = harmony.progression(style.progression, frame.major, frame.chromatic, rng.random())
    frame.chords = [((root + frame.key) % 12, intervals) for root, intervals in chords]
    return frame


def nearest(pcs: np.ndarray, target: float, low: int, high: int) -> int:
    """The MIDI note with one of these pitch classes nearest ``target`` within [low, high]."""
    candidates = np.arange(low, high + 1)
    candidates = candidates[np.isin(candidates % 12, pcs)]
    return int(candidates[np.argmin(np.abs(candidates - target))])


def _pattern(frame: Frame, slots_per_beat: int, density: float, strong: float = 1.0) -> np.ndarray:
    """A one-bar onset pattern (ticks) on a grid: beats likelier than offbeats, beat one always."""
    step = T // slots_per_beat
    ticks = np.arange(0, frame.bar, step)
    on_beat = ticks % T == 0
    p = np.where(on_beat, strong * density + (1 - strong) * 0.5, density * 0.8)
    if frame.syncopation:
        p = np.where(~on_beat & (ticks % (T // 2) == 0), np.minimum(p * 1.6, 0.95), p)
    chosen = frame.rng.random(len(ticks)) < p
    chosen[0] = True
    return ticks[chosen]


def _anticipate(frame: Frame, ticks: np.ndarray, share: float = 0.5) -> np.ndarray:
    """Syncopation: some notes due on a beat arrive half a subdivision early."""
    if not frame.syncopation:
        return ticks
    push = (ticks % T == 0) & (ticks > 0) & (frame.rng.random(len(ticks)) < share)
    return np.where(push, ticks - T // 2 if frame.subdivision == 2 else ticks - T // 3, ticks)


def _legato(ticks: np.ndarray, end: float, gate: float) -> np.ndarray:
    """Lengths up to the next onset, times a gate (1 = legato, 0.5 = detached)."""
    order = np.argsort(ticks, kind="stable")
    nxt = np.append(ticks[order][1:], end)
    lengths = np.empty_like(ticks, dtype=np.float64)
    lengths[order] = np.maximum((nxt - ticks[order]) * gate, 1.0)
    return lengths


# ---- bass ----------------------------------------------------------------------------------------
def bass_line(frame: Frame, style: str, low: int = 28, high: int = 50) -> Notes:
    rng, bar = frame.rng, frame.bar
    beat_ticks = np.arange(frame.beats) * T
    if style == "none":
        return Notes.join([])
    if style == "root8":
        pattern = np.arange(0, bar, T // 2 if frame.subdivision == 2 else T // 3)
        degrees = np.zeros(len(pattern), dtype=np.int64)
    elif style == "root_fifth":
        pattern = np.array([0, (frame.beats // 2) * T]) if frame.beats > 2 else np.array([0, T])
        degrees = np.array([0, 2])
    elif style == "walking":
        pattern, degrees = beat_ticks, np.array([0] + [-1] * (frame.beats - 1))
    elif style == "tumbao" and frame.beats == 4:
        pattern, degrees = np.array([18, 36]), np.array([2, 0])
    elif style == "octave":
        pattern = np.arange(0, bar, T // 2)
        degrees = np.tile([0, 10], len(pattern))[:len(pattern)]  # 10: the octave above (see below)
    elif style == "sub":
        pattern, degrees = np.array([0]), np.array([0])
    elif style == "offbeat":
        pattern = beat_ticks + T // 2
        degrees = np.zeros(len(pattern), dtype=np.int64)
    elif style == "reggae":
        pattern = np.sort(rng.choice(np.arange(T // 2, bar, T // 2), size=min(4, 2 * frame.beats - 1), replace=False))
        degrees = rng.choice([0, 0, 2, 10], size=len(pattern))
    elif style == "continuo":
        pattern, degrees = beat_ticks, rng.choice([0, 0, 1, 2], size=frame.beats)
    else:  # groove, and tumbao outside 4/4
        pattern = _pattern(frame, 2 if frame.subdivision == 2 else 3, 0.45)
        degrees = rng.choice([0, 0, 0, 2, 10], size=len(pattern))
        degrees[0] = 0
    pattern = _anticipate(frame, pattern, 0.25) if style in ("groove", "tumbao") else pattern
    ticks, pitches = [], []
    for b in range(frame.n_bars):
        pcs = frame.chord_pcs(b)
        root = nearest([frame.root(b)], 38, low, high)
        next_root = nearest([frame.root(b + 1)], 38, low, high)
        for tick, degree in zip(pattern, degrees):
            if degree == 0:
                pitch = root
            elif degree == 10:
                pitch = root + 12 if root + 12 <= high + 7 else root
            elif degree == 2:
                pitch = nearest([(frame.root(b) + 7) % 12], root + 5, low, high + 5)
            elif degree == 1:
                pitch = nearest(pcs, root + 4, low, high)
            else:  # walking: chord or scale tones, the last beat leading into the next root
                if tick == pattern[-1]:
                    pitch = next_root + (rng.choice([-1, 1]) if frame.chromatic else rng.choice([-2, 2]))
                else:
                    pitch = nearest(frame.scale() if rng.random() < 0.4 else pcs, root + rng.integers(2, 10), low, high)
            ticks.append(b * bar + tick)
            pitches.append(pitch)
    ticks = np.array(ticks, dtype=np.float64)
    gate = {"root8": 0.9, "offbeat": 0.5, "reggae": 0.8, "sub": 1.0}.get(style, 0.85)
    velocity = 0.6 + 0.3 * frame.intensity + 0.1 * rng.random(len(ticks))
    return notes_of(ticks, _legato(ticks, frame.n_bars * bar, gate), pitches, velocity)


# ---- chords ------------------------------------------------------------------------------------
COMP_CENTRE = {"piano": 62, "guitar": 57, "organ": 62, "strings": 64, "synth_pad": 60, "harpsichord": 64,
               "accordion": 64, "brass": 64, "choir": 62}


def chords(frame: Frame, style: str, centre: int) -> Notes:
    """Accompaniment on the progression; one lane per chord voice (sustained instruments need them)."""
    rng, bar = frame.rng, frame.bar
    beat_ticks = np.arange(frame.beats) * T
    sub_ticks = np.arange(0, bar, T // frame.subdivision)
    mode = "block"  # block: every voice at once; arpeggio: one voice per onset (pattern -> voice index)
    voice_of: np.ndarray | None = None
    gate = 0.9
    if style == "sustain":
        pattern, gate = np.array([0]), 1.0
    elif style == "block":
        pattern = beat_ticks
    elif style == "strum":
        pattern = _pattern(frame, frame.subdivision, 0.6, strong=1.0)
    elif style == "arpeggio":
        step = T // (4 if frame.grid == 4 else frame.subdivision)
        pattern, mode, gate = np.arange(0, bar, step), "arpeggio", 2.0
        shape = np.array([0, 1, 2, 3, 2, 1])
        voice_of = shape[np.arange(len(pattern)) % len(shape)]
    elif style == "alberti":
        pattern, mode = np.arange(0, bar, T // 2 if frame.subdivision == 2 else T // 3), "arpeggio"
        voice_of = np.tile([0, 2, 1, 2], len(pattern))[:len(pattern)]
    elif style in ("stabs", "house", "skank", "funk"):
        if style == "house":
            pattern = beat_ticks + T // 2
        elif style == "skank":
            pattern = beat_ticks + (T // 2 if frame.subdivision == 2 else T // 3)
        elif style == "funk":
            grid16 = np.arange(0, bar, T // 4)
            pattern = grid16[rng.random(len(grid16)) < 0.5]
        else:
            pattern = _pattern(frame, 2, 0.35, strong=0.5)
        gate = 0.3
    elif style == "power":  # chugging subdivisions when played hard, else held chords
        if frame.intensity > 0.6:
            pattern = sub_ticks
        else:
            pattern = np.array([0, bar // 2]) if frame.beats % 2 == 0 else np.array([0])
        gate = 1.0
    elif style == "jazz_comp":
        pattern = np.sort(rng.choice(np.arange(0, bar, T // 2), size=min(3, frame.beats), replace=False))
        gate = 0.7
    elif style == "montuno":
        pattern, mode = np.arange(0, bar, T // 2), "arpeggio"
        voice_of = np.tile([3, 1, 2, 3, 0, 2, 3, 1], len(pattern))[:len(pattern)]
        gate = 0.8
    elif style == "bossa":
        pattern = np.array([0, 18, 30]) if frame.beats == 4 else _pattern(frame, 2, 0.5)
        gate = 0.9
    elif style == "oompah":
        pattern = beat_ticks[1:] if frame.beats > 1 else beat_ticks
        gate = 0.5
    else:
        raise ValueError(f"score.py: unknown accompaniment style {style!r}")
    if style in ("strum", "stabs", "jazz_comp", "bossa"):
        pattern = _anticipate(frame, np.sort(pattern))
    pattern = np.sort(pattern)
    lengths = _legato(pattern.astype(np.float64), bar, gate) if style != "sustain" else np.array([float(bar)])

    parts, previous = [], float(centre)
    for b in range(frame.n_bars):
        root, intervals = frame.chords[b % len(frame.chords)]
        if style == "power":
            voiced = np.array([0, 7, 12]) + nearest([root], centre - 12, centre - 18, centre - 6)
        elif style == "jazz_comp":
            voiced = harmony.voicing(root, tuple(i for i in intervals if i in (3, 4, 10, 11)) or intervals, previous)
        else:
            voiced = harmony.voicing(root, intervals, previous)
        previous = 0.5 * previous + 0.5 * centre + 0.5 * (voiced.mean() - centre) * 0.3
        start = b * bar
        if mode == "arpeggio":
            v = np.minimum(voice_of, len(voiced) - 1)
            parts.append(notes_of(start + pattern, lengths, voiced[v], 0.55 + 0.25 * frame.intensity, v))
        else:
            k = len(voiced)
            ticks = np.repeat(start + pattern, k)
            lanes = np.tile(np.arange(k), len(pattern))
            parts.append(notes_of(ticks, np.repeat(lengths, k), voiced[lanes], 0.5 + 0.3 * frame.intensity, lanes))
        if style == "oompah":
            parts.append(notes_of([start], [T * 0.9], [voiced[0] - 12], 0.7, 0))
    notes = Notes.join(parts)
    notes.velocity *= 0.9 + 0.2 * rng.random(len(notes.velocity))
    if frame.syncopation and len(notes.tick):  # pushed chord changes: the new chord arrives an 8th early
        downbeat = (notes.tick % bar == 0) & (notes.tick > 0)
        pushed = downbeat & (rng.random(frame.n_bars + 1)[(notes.tick // bar).astype(np.int64)] < 0.6)
        push = T // 2 if frame.subdivision == 2 else T // 3
        notes.tick = np.where(pushed, notes.tick - push, notes.tick)
        notes.length = np.where(pushed, notes.length + push, notes.length)
    return notes


# ---- melodies ------------------------------------------------------------------------------------
def melody(frame: Frame, style: str, low: int, high: int, density: float = 0.5, phrase_bars: int = 2) -> Notes:
    """A melodic line: motifs of ``phrase_bars`` bars (A A B A), chord tones on strong beats."""
    rng, bar = frame.rng, frame.bar
    scale = frame.scale()
    if style in ("motor", "arp"):
        slots = 4 if frame.subdivision == 2 else 3
        if style == "motor" and frame.subdivision == 2 and frame.grid == 2:
            slots = 2
        rhythm = [np.arange(0, bar * phrase_bars, T // slots)] * 2
        gate = 0.5 if style == "arp" else 0.95
    elif style == "sparse":
        rhythm = [np.array([0, (frame.beats // 2) * T * phrase_bars]) if frame.beats > 1 else np.array([0])] * 2
        gate = 1.0
    else:
        slots = 4 if style == "rap" else frame.grid if style == "riff" else min(frame.grid, 2 if frame.subdivision == 2 else 3)
        if style == "improv":
            slots = 2 if frame.subdivision == 2 else 3
            density = max(density, 0.65)
        rhythm = []
        for _ in range(2):
            pattern = np.concatenate([_pattern(frame, slots, density) + k * bar for k in range(phrase_bars)])
            pattern = pattern[pattern < bar * phrase_bars - (T if style not in ("riff",) else 0)]  # breathe
            rhythm.append(_anticipate(frame, pattern, 0.3))
        gate = 0.85 if style != "rap" else 0.6
    n_phrases = (frame.n_bars + phrase_bars - 1) // phrase_bars
    steps = {0: rng.choice([-2, -1, -1, 1, 1, 2, 0, 3, -3], size=len(rhythm[0])),
             1: rng.choice([-2, -1, 1, 2, 0, -3, 3], size=len(rhythm[1]))}
    ticks, pitches, velocities = [], [], []
    centre = (low + high) / 2
    for phrase in range(n_phrases):
        which = 1 if phrase % 4 == 2 else 0
        base = phrase * phrase_bars * bar
        first_bar = phrase * phrase_bars
        scale_notes = np.arange(low, high + 1)[np.isin(np.arange(low, high + 1) % 12, scale)]
        current = nearest(frame.chord_pcs(first_bar), centre + rng.integers(-3, 4), low, high)
        position = int(np.clip(np.searchsorted(scale_notes, current), 0, len(scale_notes) - 1))
        for i, tick in enumerate(rhythm[which]):
            b = first_bar + int(tick // bar)
            if b >= frame.n_bars:
                break
            if style == "arp":  # chord tones from the bottom of the range, up and round again
                tones = np.arange(low, low + 19)
                tones = tones[np.isin(tones % 12, frame.chord_pcs(b))]
                pitch = int(tones[i % len(tones)])
            elif style == "rap":
                pitch = int(centre + rng.choice([-2, 0, 0, 0, 1, 2, 3]) + (2 if i == 0 else 0))
            else:
                position = int(np.clip(position + steps[which][i], 0, len(scale_notes) - 1))
                pitch = int(scale_notes[position])
                if (tick % T == 0) or style == "sparse":  # strong beats: a chord tone
                    pitch = nearest(frame.chord_pcs(b), pitch, low, high)
                    position = int(np.clip(np.searchsorted(scale_notes, pitch), 0, len(scale_notes) - 1))
                elif frame.chromatic and rng.random() < 0.45:  # chromatic approach tone
                    pitch = int(np.clip(pitch + rng.choice([-1, 1]), low, high))
            ticks.append(base + tick)
            pitches.append(pitch)
            velocities.append(0.6 + 0.2 * frame.intensity + (0.15 if tick % T == 0 else 0.0))
    ticks = np.array(ticks, dtype=np.float64)
    keep = ticks < frame.n_bars * bar
    ticks, pitches, velocities = ticks[keep], np.array(pitches)[keep], np.array(velocities)[keep]
    return notes_of(ticks, _legato(ticks, frame.n_bars * bar, gate), pitches, velocities)


def with_vowels(notes: Notes, rng: np.random.Generator, n_vowels: int) -> Notes:
    notes.vowel = rng.integers(0, n_vowels, size=len(notes.tick))
    return notes
