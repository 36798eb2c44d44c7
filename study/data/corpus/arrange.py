"""Orchestration: which part each planned instrument plays, and with which sound.

Every stem the plan lists gets at least one part with notes (so its tag is audible); the lead
(the singer, else the style's first lead instrument) carries the melody and the others comp,
double the bass, answer the melody or keep time.  Sound choices that do not change any tag
(which piano, which organ stops, which drum machine) are the artist's, so an artist keeps a
recognisable sound from clip to clip.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from study.data.corpus import score, taxonomy as tx
from study.data.corpus.drums import KITS, drum_pattern, percussion_pattern
from study.data.corpus.instruments import VOWEL_NAMES
from study.data.corpus.score import Frame, Notes


@dataclass(frozen=True)
class Sound:
    """How the renderer voices a part."""

    kind: str  # plucked | table | voice | hits
    recipe: str = ""  # plucked recipe, wavetable spectrum, or drum kit
    variant: int = 0
    attack: float = 0.01  # seconds
    decay: float = 0.0  # seconds to fall to ``sustain`` (0: no decay)
    sustain: float = 1.0
    release: float = 0.08
    vibrato: float = 0.0  # cents
    vibrato_rate: float = 5.5  # Hz
    unison: float = 0.0  # cents of detune of a second voice (ensembles, supersaws, musette)
    glide: float = 0.0  # portamento time constant (s)
    drive: float = 0.0  # distortion drive (0: clean)
    tremolo: float = 0.0  # amplitude modulation depth (rotary speaker)
    strum: float = 0.0  # seconds between the strings of a strummed chord
    dynamics: bool = False  # brighter table for louder notes (brass)
    formant_scale: float = 1.0  # voices: formants move up with the register
    grit: float = 0.0


@dataclass
class Part:
    stem: str
    sound: Sound
    notes: Notes | None = None
    hits: tuple[np.ndarray, list[str], np.ndarray] | None = None
    electronic: bool = False  # quantised: no human timing


# instrument -> (low, high) MIDI range of its melodies
MELODY_RANGE = {"piano": (60, 84), "harpsichord": (62, 86), "guitar": (55, 79), "strings": (62, 88),
                "brass": (58, 80), "winds": (62, 86), "organ": (60, 82), "accordion": (60, 82), "sitar": (55, 77),
                "synth_lead": (60, 84)}
WINDS_VARIANT = {"flute": 0, "clarinet": 1, "sax": 2, "harmonica": 3}
WINDS_RANGE = {"flute": (67, 91), "clarinet": (55, 79), "sax": (52, 76), "harmonica": (60, 84)}
BRASS_RANGE = {"trumpet": (58, 82), "section": (55, 79), "horn": (50, 74)}
PIANOS = ("piano", "piano_mellow", "piano_bright")


def comp_style(name: str, style, distorted: bool) -> str:
    """The accompaniment an instrument plays in a style."""
    base = style.comp_style
    if name == "guitar":
        if distorted:
            return "power"
        return base if base in ("strum", "skank", "funk", "bossa", "arpeggio") else "strum"
    if name == "piano":
        return {"strum": "block", "sustain": "block", "funk": "stabs", "bossa": "jazz_comp", "oompah": "block",
                "power": "block"}.get(base, base)
    if name == "harpsichord":
        return "arpeggio"
    if name == "organ" and base == "skank":
        return "skank"
    if name == "accordion" and base == "oompah":
        return "oompah"
    return "sustain"


def sound_of(name: str, plan: dict, style, artist) -> Sound:
    """The sound of an instrument stem; ``artist(stream)`` draws the artist's persistent choices."""
    variant = int(artist(f"timbre.{name}") * 3)
    if name == "piano":
        return Sound("plucked", PIANOS[variant], release=0.15)
    if name == "harpsichord":
        return Sound("plucked", "harpsichord", release=0.05)
    if name == "guitar":
        if plan["guitar_distorted"]:
            return Sound("table", "power_guitar", attack=0.005, release=0.05, drive=6.0 + 6.0 * plan["intensity"])
        kind = tx.GUITAR_KINDS[plan["guitar_kind"]]
        return Sound("plucked", f"guitar_{kind}", release=0.1, strum=0.012 + 0.01 * artist("timbre.strum"))
    if name == "bass":
        kind = tx.BASS_KINDS[plan["bass_kind"]]
        if kind == "synth":
            return Sound("table", "synth_bass", variant, attack=0.005, decay=0.3, sustain=0.6, release=0.05)
        return Sound("plucked", f"bass_{kind}", release=0.06, drive=5.0 if plan["bass_distorted"] else 0.0)
    if name == "strings":
        return Sound("table", "strings", variant, attack=0.12, release=0.3, unison=9.0,
                     vibrato=0.0 if style.melody == "motor" else 18.0)
    if name == "brass":
        return Sound("table", "brass", attack=0.04, release=0.1, vibrato=8.0, dynamics=True, unison=5.0)
    if name == "winds":
        return Sound("table", "winds", WINDS_VARIANT[style.winds_kind], attack=0.05, release=0.08,
                     vibrato=15.0 if style.winds_kind in ("flute", "sax") else 0.0)
    if name == "organ":
        return Sound("table", "organ", variant, attack=0.01, release=0.05, tremolo=0.25 if variant != 1 else 0.0)
    if name == "accordion":
        return Sound("table", "accordion", attack=0.03, release=0.08, unison=12.0, tremolo=0.1)
    if name == "sitar":
        return Sound("plucked", "sitar", release=0.2)
    if name == "synth_lead":
        return Sound("table", "synth", variant, attack=0.005, release=0.06, vibrato=12.0,
                     glide=0.06 if style.drum_style == "gfunk" else 0.0, unison=10.0 if variant == 0 else 0.0)
    if name == "synth_pad":
        return Sound("table", "pad", variant, attack=0.4, release=0.6, unison=8.0)
    raise ValueError(f"arrange.py: no sound for instrument {name!r}")


def arrange(plan: dict, style, frame: Frame, artist, rng: np.random.Generator) -> list[Part]:
    """All parts of a clip, each with notes on the tick grid."""
    inst = {name: bool(plan["inst"][i]) for i, name in enumerate(tx.INSTRUMENTS)}
    lead = None if plan["lead"] < 0 else tx.INSTRUMENTS[plan["lead"]]
    parts: list[Part] = []
    chord_players = [name for name in tx.CHORD_INSTRUMENTS if inst[name]]

    if inst["bass"]:
        bass_style = style.bass_style if style.bass_style != "none" else "groove"
        parts.append(Part("bass", sound_of("bass", plan, style, artist), score.bass_line(frame, bass_style)))

    for name in chord_players:
        if name == lead and len(chord_players) > 1:
            continue  # the lead plays the tune while others comp
        notes = score.chords(frame, comp_style(name, style, plan["guitar_distorted"]), score.COMP_CENTRE[name])
        parts.append(Part(name, sound_of(name, plan, style, artist), notes))

    if lead is not None:
        low, high = _range(lead, style)
        parts.append(Part(lead, sound_of(lead, plan, style, artist),
                          score.melody(frame, style.melody if lead != "sitar" else "improv", low, high,
                                       density=0.4 + 0.3 * frame.intensity)))
    for name in ("brass", "winds", "synth_lead", "sitar"):
        if inst[name] and name != lead:  # second voices: section stabs, answers, arpeggios
            if name == "brass":
                notes = score.chords(frame, "stabs", score.COMP_CENTRE["brass"])
            elif name == "synth_lead" and style.melody in ("arp", "riff"):
                notes = score.melody(frame, "arp" if style.melody == "arp" else "riff", 55, 79, density=0.4)
            else:
                low, high = _range(name, style)
                notes = score.melody(frame, "sparse" if name != "sitar" else "improv", low - 5, high - 5, 0.3)
            parts.append(Part(name, sound_of(name, plan, style, artist), notes))
    if inst["sitar"]:  # the tanpura drone on tonic and fifth under an Indian melody
        whole = frame.n_bars * frame.bar
        drone = Notes.join([score.notes_of([0.0], [whole], [48 + frame.key], 0.5, 0),
                            score.notes_of([0.0], [whole], [55 + frame.key], 0.4, 1)])
        parts.append(Part("sitar", Sound("table", "drone", attack=0.5, release=0.5, unison=4.0), drone))

    if plan["lead_vocals"]:
        high = bool(plan["high_register"])
        low_note, high_note = (57, 76) if high else (45, 64)
        if plan["rapped"]:
            notes = score.melody(frame, "rap", low_note + 3, low_note + 10, density=0.75)
        else:
            notes = score.melody(frame, "song", low_note, high_note, density=0.35 + 0.3 * frame.intensity)
        score.with_vowels(notes, rng, len(VOWEL_NAMES))
        scale = (1.17 if high else 1.0) * (0.95 + 0.1 * artist("timbre.voice"))
        parts.append(Part("vocals", Sound("voice", attack=0.03, release=0.08, vibrato=0.0 if plan["rapped"] else 35.0,
                                          vibrato_rate=5.0 + artist("timbre.vibrato"), formant_scale=scale,
                                          grit=0.7 if plan["gritty"] else 0.0), notes))
    if plan["choir"]:
        notes = score.chords(frame, "sustain", score.COMP_CENTRE["choir"])
        notes.vowel = np.where(notes.lane % 2 == 0, VOWEL_NAMES.index("a"), VOWEL_NAMES.index("o"))
        parts.append(Part("choir", Sound("voice", attack=0.25, release=0.4, vibrato=20.0, unison=10.0,
                                         formant_scale=1.08), notes))

    if plan["drums"] > 0:
        electronic = plan["drums"] == 2
        if electronic:
            kit = "909" if style.drum_style in ("techno", "house", "four_floor") or artist("timbre.kit") < 0.3 else "808"
        else:
            kit = {"jazz": "jazz", "brushes": "brushes"}.get(style.drum_style, "rock")
        drum_style = style.drum_style if style.drum_style != "none" else "rock"
        ticks, roles, velocity = drum_pattern(drum_style, frame.beats, frame.subdivision, frame.n_bars,
                                              frame.intensity, float(plan["backbeat"]), frame.syncopation,
                                              electronic, rng)
        parts.append(Part("drums", Sound("hits", kit), hits=(ticks, [KITS[kit][r] for r in roles], velocity),
                          electronic=electronic))
    if plan["percussion"]:
        parts.append(Part("percussion", Sound("hits", style.percussion_style),
                          hits=percussion_pattern(style.percussion_style, frame.beats, frame.subdivision,
                                                  frame.n_bars, frame.intensity, rng)))
    return parts


def _range(name: str, style) -> tuple[int, int]:
    if name == "winds":
        return WINDS_RANGE[style.winds_kind]
    if name == "brass":
        return BRASS_RANGE[style.brass_kind]
    return MELODY_RANGE[name]
