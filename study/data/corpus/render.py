"""Audio: parts become stems, stems become a mixed and mastered 16 kHz clip.

Sustained instruments read band-limited wavetables along a continuous phase (vibrato, glide,
unison detune); plucked strings and drums add pre-rendered notes at their onsets.  Each stem is
scaled to the power the plan gave it (so the plan's acousticness and brightness are what the
mix holds), then the mix gets its production: dub echoes, a room or a hall, an audience for
live recordings, a tone control (brightness) and a loudness that follows energy.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sp_fft

from study.data.corpus import taxonomy as tx
from study.data.corpus.arrange import Part, Sound, arrange
from study.data.corpus.draws import Draws
from study.data.corpus.drums import band, hit
from study.data.corpus.instruments import band_of, consonant, hz, plucked_note, vowel_tables, wavetable
from study.data.corpus.score import T, make_frame

_STYLES = [style for _, _, _, style in tx.SUBGENRES]
_CENT = np.log(2.0) / 1200.0
TONE_DB = 12.0  # the tone control spans -TONE_DB .. +TONE_DB above about 1.5 kHz


# ---- time ------------------------------------------------------------------------------------------
def tick_seconds(ticks: np.ndarray, bpm: float, swing: str, rubato: float = 0.0) -> np.ndarray:
    """Onset times: swung offbeats move late (triplet feel), rubato breathes the tempo."""
    beat, within = np.divmod(np.asarray(ticks, dtype=np.float64), T)
    if swing == "8th":
        within = np.interp(within, [0, 6, 12], [0, 8, 12])
    elif swing == "16th":
        within = np.interp(within, [0, 3, 6, 9, 12], [0, 4, 6, 10, 12])
    seconds = (beat + within / T) * 60.0 / bpm
    if rubato:
        seconds = seconds + rubato * np.sin(2 * np.pi * seconds / 8.0)
    return seconds


# ---- sources -----------------------------------------------------------------------------------------
BLOCK = 64  # samples per control block (4 ms): pitch and envelope move per block, phase per sample


def _lane(out: np.ndarray, start: np.ndarray, length: np.ndarray, f0: np.ndarray, velocity: np.ndarray,
          rows: np.ndarray, tables: np.ndarray, sound: Sound, sample_rate: int, lfo_phase: float = 0.0) -> None:
    """One monophonic line read from wavetables (rows: the table each note reads), added to ``out``.

    Onsets fall on 4 ms control blocks; within a block the phase advances per sample and the
    envelope is interpolated linearly, so the cost is a few passes over the sounding samples.
    """
    n = len(out)
    n_blocks = -(-n // BLOCK)
    block_of = (start + BLOCK // 2) // BLOCK  # onset block of each note
    order = np.argsort(block_of, kind="stable")
    block_of, length, f0, velocity, rows = block_of[order], length[order], f0[order], velocity[order], rows[order]
    blocks = np.arange(n_blocks + 1)
    note = np.searchsorted(block_of, blocks, side="right") - 1  # (blocks + 1,) note sounding, -1 before the first
    active = note >= 0
    note = np.maximum(note, 0)
    since = ((blocks - block_of[note]) * BLOCK).astype(np.float64)  # samples since the note's onset
    freq = f0[note]
    if sound.glide:
        previous = np.concatenate([[f0[0]], f0[:-1]])[note]
        freq = previous + (freq - previous) * (1.0 - np.exp(-since / (sound.glide * sample_rate)))
    if sound.vibrato:
        lfo = np.sin(2 * np.pi * sound.vibrato_rate * blocks * BLOCK / sample_rate + lfo_phase)
        freq = freq * (1.0 + sound.vibrato * _CENT * lfo * np.minimum(since / (0.25 * sample_rate), 1.0))
    increment = freq[:-1] / sample_rate  # cycles per sample, per block
    phase0 = np.concatenate([[0.0], np.cumsum(increment * BLOCK)[:-1]]) % 1.0
    envelope = np.minimum(since / max(sound.attack * sample_rate, 1.0), 1.0)
    if sound.decay:
        envelope *= sound.sustain + (1.0 - sound.sustain) * np.exp(-since / (sound.decay * sample_rate))
    envelope *= np.clip(1.0 - (since - length[note]) / max(sound.release * sample_rate, 1.0), 0.0, 1.0)
    envelope = (envelope * velocity[note] * active).astype(np.float32)
    sounding = np.nonzero((envelope[:-1] > 0) | (envelope[1:] > 0))[0]  # skip silent blocks
    if not len(sounding):
        return
    ramp = np.arange(BLOCK, dtype=np.float32)
    size = tables.shape[1]
    phase = phase0[sounding].astype(np.float32)[:, None] + ramp[None, :] * increment[sounding].astype(np.float32)[:, None]
    index = (phase * np.float32(size)).astype(np.int32)
    index &= size - 1
    index += (rows[note[sounding]] * size).astype(np.int32)[:, None]
    samples = np.take(tables.ravel(), index)  # (sounding blocks, BLOCK)
    start_gain, step = envelope[sounding], (envelope[sounding + 1] - envelope[sounding]) / BLOCK
    samples *= start_gain[:, None] + step[:, None] * ramp[None, :]
    padded = np.zeros(n_blocks * BLOCK, dtype=np.float32)
    padded.reshape(n_blocks, BLOCK)[sounding] = samples
    out += padded[:n]


def _tables_for(sound: Sound, pitch: np.ndarray, velocity: np.ndarray, vowel, sample_rate: int):
    """(tables, row of each note) for a wavetable or voice part."""
    if sound.kind == "voice":
        return vowel_tables(hz(pitch), vowel, sound.formant_scale, sample_rate), np.arange(len(pitch))
    if sound.dynamics:  # three tables, soft to loud: louder notes are brighter
        tables = np.concatenate([wavetable(sound.recipe, v, sample_rate) for v in range(3)])
        level = np.clip((velocity * 3).astype(np.int64) - 1, 0, 2)
        return tables, level * (len(tables) // 3) + band_of(pitch)
    return wavetable(sound.recipe, sound.variant, sample_rate), band_of(pitch)


def render_table_part(part: Part, onset: np.ndarray, end: np.ndarray, n: int, sample_rate: int) -> np.ndarray:
    """A sustained part (or a voice): one wavetable line per lane, two detuned lines for unison sounds."""
    notes, sound = part.notes, part.sound
    out = np.zeros(n, dtype=np.float32)
    start = np.round(onset * sample_rate).astype(np.int64)
    length = np.maximum(np.round((end - onset) * sample_rate).astype(np.int64), 1)
    tables, rows = _tables_for(sound, notes.pitch, notes.velocity, notes.vowel, sample_rate)
    detunes = (0.0,) if not sound.unison else (-sound.unison / 2, sound.unison / 2)
    for lane in np.unique(notes.lane):
        chosen = notes.lane == lane
        for k, cents in enumerate(detunes):
            f0 = hz(notes.pitch[chosen]) * np.exp(cents * _CENT)
            _lane(out, start[chosen], length[chosen], f0, notes.velocity[chosen] / len(detunes), rows[chosen],
                  tables, sound, sample_rate, lfo_phase=2.0 * k)
    return out


def render_plucked_part(part: Part, onset: np.ndarray, end: np.ndarray, n: int, sample_rate: int) -> np.ndarray:
    """Pre-rendered plucked notes, damped at the end of their duration; chords strummed string by string."""
    notes, sound = part.notes, part.sound
    out = np.zeros(n, dtype=np.float32)
    if sound.strum:  # lane = string, low to high
        onset = onset + sound.strum * notes.lane
    release = int(sound.release * sample_rate)
    fade = np.linspace(1.0, 0.0, release, dtype=np.float32)
    starts = np.round(onset * sample_rate).astype(np.int64)
    stops = np.round(end * sample_rate).astype(np.int64) + release
    for start, stop, pitch, velocity in zip(starts, stops, notes.pitch.astype(np.int64), notes.velocity):
        if start >= n:
            continue
        tone = plucked_note(sound.recipe, int(pitch), sample_rate)
        count = min(len(tone), stop - start, n - start)
        segment = tone[:count] * np.float32(velocity)
        if count == stop - start and count >= release:
            segment[-release:] *= fade
        out[start:start + count] += segment
    return out


def render_hits(part: Part, onset: np.ndarray, n: int, sample_rate: int) -> np.ndarray:
    """Drum or percussion hits added at their onsets."""
    out = np.zeros(n, dtype=np.float32)
    _, names, velocity = part.hits
    for start, name, level in zip(np.round(onset * sample_rate).astype(np.int64), names, velocity):
        if 0 <= start < n:
            sound = hit(name, sample_rate)
            count = min(len(sound), n - start)
            out[start:start + count] += sound[:count] * np.float32(level)
    return out


# ---- effects -----------------------------------------------------------------------------------------
def distort(x: np.ndarray, drive: float, sample_rate: int) -> np.ndarray:
    """Overdrive (tanh clipping) into a speaker-cabinet low-pass: the added harmonics of §3's 'distortion'."""
    from scipy import signal  # imported where used: scipy.signal costs a second at start-up (see drums.band)

    peak = float(np.abs(x).max()) or 1.0
    y = np.tanh(drive * x / peak)
    return signal.sosfilt(_cabinet(sample_rate), y).astype(np.float32)


@lru_cache(maxsize=None)
def _cabinet(sample_rate: int) -> np.ndarray:
    from scipy import signal

    return signal.butter(2, min(5000.0 / (sample_rate / 2), 0.99), output="sos")


@lru_cache(maxsize=None)
def impulse_response(kind: str, sample_rate: int) -> np.ndarray:
    """A room ('room', 0.4 s) or a concert hall ('hall', 2.2 s): early reflections and a decaying tail."""
    from scipy import signal

    rt60 = {"room": 0.4, "hall": 2.2}[kind]
    n = int(min(rt60, 1.6) * sample_rate)
    t = np.arange(n) / sample_rate
    rng = np.random.default_rng(len(kind))
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail = signal.lfilter([0.4], [1.0, -0.6], tail)  # air absorbs the treble of the tail
    tail[: int(0.012 * sample_rate)] = 0.0  # pre-delay
    for delay, gain in ((0.013, 0.6), (0.021, 0.45), (0.034, 0.35)):
        tail[int(delay * sample_rate)] += gain
    return (tail / np.sqrt(np.sum(tail ** 2))).astype(np.float32)


@lru_cache(maxsize=None)
def _crowd(sample_rate: int) -> np.ndarray:
    """Eight seconds of audience: a murmur that swells and fades, and scattered claps."""
    n = 8 * sample_rate
    rng = np.random.default_rng(12345)
    murmur = band(rng.standard_normal(n), 300.0, 3000.0, sample_rate)
    swell = np.interp(np.arange(n), np.linspace(0, n, 17), 0.6 + 0.4 * rng.random(17))
    claps = np.zeros(n)
    clap = hit("clap", sample_rate)[: int(0.05 * sample_rate)]
    for start in rng.integers(0, n - len(clap), size=120):
        claps[start:start + len(clap)] += clap * rng.uniform(0.1, 0.4)
    crowd = murmur / murmur.std() * swell + 2.0 * claps
    return (crowd / crowd.std()).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    """Root mean square (numpy's pairwise sum: the same bits at any BLAS thread count)."""
    return float(np.sqrt(np.square(x).sum(dtype=np.float64) / max(len(x), 1)))


# ---- the clip -----------------------------------------------------------------------------------------
def render_clip(plan: dict, seconds: float, sample_rate: int = 16000, *, return_stems: bool = False):
    """Audio (float32 mono in [-1, 1]) of one planned clip; with ``return_stems`` also the scaled stems."""
    style = _STYLES[plan["subgenre"]]
    seed, index = int(plan["seed"]), int(plan["index"])
    rng = np.random.default_rng([seed, index, 7])
    artist_draws = Draws(seed, np.array([plan["artist"]]))
    artist = lambda stream: float(artist_draws.uniform(stream)[0])  # noqa: E731
    bpm, beats = float(plan["bpm"]), int(plan["beats"])
    bar_seconds = beats * 60.0 / bpm
    lead_in = float(plan["start"]) * bar_seconds
    n = int(round(seconds * sample_rate))
    n_bars = int(np.ceil((seconds + lead_in) / bar_seconds)) + 1
    frame = make_frame(plan, style, n_bars, rng)
    swing = "none"
    if plan["feel"] in (1, 2) and frame.subdivision == 2:
        swing = "16th" if frame.grid == 4 and plan["feel"] == 1 else "8th"
    rubato = 0.04 * bar_seconds if style.rubato else 0.0

    stems: dict[str, np.ndarray] = {}
    for part in arrange(plan, style, frame, artist, rng):
        human = 0.0 if part.electronic or part.sound.recipe in ("808", "909") else (0.012 if plan["live"] else 0.004)
        if part.hits is not None:
            onset = tick_seconds(part.hits[0], bpm, swing, rubato) - lead_in
            onset = onset + human * rng.standard_normal(len(onset))
            audio = render_hits(part, onset, n, sample_rate)
        else:
            notes = part.notes
            onset = tick_seconds(notes.tick, bpm, swing, rubato) - lead_in
            end = tick_seconds(notes.tick + notes.length, bpm, swing, rubato) - lead_in
            jitter = human * rng.standard_normal(len(onset))
            onset, end = onset + jitter, end + jitter
            sounding = end > 0  # notes that end before the clip starts are not heard
            onset, end = np.maximum(onset[sounding], 0.0), end[sounding]
            part.notes = notes.subset(sounding)
            if part.sound.kind == "plucked":
                audio = render_plucked_part(part, onset, end, n, sample_rate)
            else:
                audio = render_table_part(part, onset, end, n, sample_rate)
            if part.stem == "vocals":
                _consonants(audio, onset, part.notes.velocity, 0.9 if plan["rapped"] else 0.6, rng, sample_rate)
        if part.sound.drive:
            audio = distort(audio, part.sound.drive, sample_rate)
        if part.sound.tremolo:  # rotary speaker / bellows: a 6 Hz amplitude wobble
            wobble = np.sin(2 * np.pi * 6.0 * np.arange(n, dtype=np.float32) / sample_rate)
            audio *= 1.0 - part.sound.tremolo * (0.5 + 0.5 * wobble)
        if part.sound.grit:
            audio = _grit(audio, part.sound.grit, sample_rate)
        stems[part.stem] = stems.get(part.stem, 0.0) + audio

    mix = np.zeros(n, dtype=np.float32)
    for stem, audio in stems.items():
        level = np.sqrt(plan["power"][tx.STEMS.index(stem)])
        audio *= np.float32(level / max(_rms(audio), 1e-9))
        if style.echo and stem in ("drums", "guitar", "organ", "brass"):
            audio = _echo(audio, 0.75 * 60.0 / bpm, sample_rate)
        stems[stem] = audio
        mix += audio
    mix = _produce(mix, plan, style, rng, sample_rate)
    if return_stems:
        return mix, stems
    return mix


def _consonants(out: np.ndarray, onset: np.ndarray, velocity: np.ndarray, share: float,
                rng: np.random.Generator, sample_rate: int) -> None:
    """Syllables start with a consonant (s, t, k, h) just before the vowel."""
    kinds = rng.integers(0, 4, size=len(onset))
    chosen = rng.random(len(onset)) < share
    for start, kind, level in zip(np.round((onset - 0.03) * sample_rate).astype(np.int64)[chosen], kinds[chosen],
                                  velocity[chosen]):
        if 0 <= start < len(out):
            sound = consonant(int(kind), sample_rate)
            count = min(len(sound), len(out) - start)
            out[start:start + count] += sound[:count] * np.float32(0.3 * level)


def _grit(x: np.ndarray, amount: float, sample_rate: int) -> np.ndarray:
    """A rough voice: noisy amplitude flutter and soft clipping."""
    flutter = np.resize(_crowd(sample_rate), len(x))
    peak = float(np.abs(x).max()) or 1.0
    return np.tanh(2.5 * x / peak * (1.0 + amount * 0.5 * flutter)).astype(np.float32)


def _echo(x: np.ndarray, delay: float, sample_rate: int) -> np.ndarray:
    """Dub delay: four repeats, each half as loud."""
    d = int(delay * sample_rate)
    out = x.copy()
    for k in range(1, 5):
        if k * d < len(x):
            out[k * d:] += x[:-k * d] * np.float32(0.5 ** k)
    return out


@lru_cache(maxsize=8)
def _room_spectrum(kind: str, wet: float, size: int, sample_rate: int) -> np.ndarray:
    """Frequency response of dry + wet reverb (linear convolution inside ``size`` samples)."""
    return (1.0 + wet * sp_fft.rfft(impulse_response(kind, sample_rate), size)).astype(np.complex64)


@lru_cache(maxsize=8)
def _low_pass_spectrum(size: int) -> np.ndarray:
    """The one-pole low-pass y = 0.45 x + 0.55 y[-1] (about 1.5 kHz) as a frequency response."""
    omega = 2.0 * np.pi * np.arange(size // 2 + 1) / size
    return (0.45 / (1.0 - 0.55 * np.exp(-1j * omega))).astype(np.complex64)


def _produce(mix: np.ndarray, plan: dict, style, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Room or hall, audience, tone control and loudness: the §3 sonority tags.

    Reverb and tone control are one multiplication in the frequency domain (one FFT each way).
    """
    n = len(mix)
    if plan["live"]:  # an audience around the band
        crowd = _crowd(sample_rate)
        offset = int(rng.integers(0, len(crowd)))
        mix = mix + np.float32(0.1 * _rms(mix)) * np.resize(np.roll(crowd, -offset), n)
    hall = bool(plan["live"]) or style.progression == "classical"
    kind, wet = ("hall", 0.45 if plan["live"] else 0.3) if hall else ("room", 0.12)
    size = sp_fft.next_fast_len(n + int(1.6 * sample_rate), real=True)
    low = _low_pass_spectrum(size)
    gain = np.float32(10.0 ** (TONE_DB * (2.0 * float(plan["tone"]) - 1.0) / 20.0))  # treble shelf (brightness)
    response = _room_spectrum(kind, wet, size, sample_rate) * (low + gain * (1.0 - low))
    mix = sp_fft.irfft(sp_fft.rfft(mix, size) * response, size)[:n].astype(np.float32)
    # Loudness follows energy (-28 .. -12 dBFS RMS); tanh keeps peaks inside [-1, 1].
    target = 10.0 ** ((-28.0 + 16.0 * float(plan["energy"])) / 20.0)
    mix *= np.float32(target / max(_rms(mix), 1e-9))
    return np.tanh(mix).astype(np.float32)
