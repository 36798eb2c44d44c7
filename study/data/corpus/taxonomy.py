"""The embedded corpus's tag taxonomy and the musical styles behind it, as data.

The categories follow the paper's 1.2M-song set (§3): meter, rhythmic feel, harmony, mood,
vocals, instrumentation, sonority, genre and subgenre.  As in §5.1 there are two kinds of tag:
classification tags (bimodal: most clips are 0, scored with ROC/PR-AUC) and regression tags in [0, 1]
with spread-out distributions (scored with √MSE).  Every style below says how a subgenre
*sounds* (tempo, meter, feel, drums, instruments, harmony, production); the tags of a clip are
then derived from what the generator decided to play (see ``plan.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

# ---- instruments and other categorical choices ------------------------------------------------
# Pitched instruments a clip may play (one flag each in the plan); drums are a separate choice.
INSTRUMENTS = ("piano", "harpsichord", "guitar", "bass", "strings", "brass", "winds", "organ",
               "accordion", "sitar", "synth_lead", "synth_pad")
METERS = ("duple", "triple", "compound_duple", "odd")
BEATS_PER_BAR = {"duple": (4,), "triple": (3,), "compound_duple": (2,), "odd": (5, 7)}
FEELS = ("straight", "swing", "shuffle")
DRUM_KINDS = ("none", "drum_kit", "electronic_drums")
GUITAR_KINDS = ("nylon", "steel", "electric")
BASS_KINDS = ("upright", "electric", "synth")

# Can play chords (the harmony must always be heard) / can carry the melody.
CHORD_INSTRUMENTS = ("piano", "harpsichord", "guitar", "strings", "organ", "accordion", "synth_pad")
LEAD_INSTRUMENTS = ("piano", "harpsichord", "guitar", "strings", "brass", "winds", "organ", "accordion",
                    "sitar", "synth_lead")

# Mixing: base power of each stem before the artist's and the clip's offsets (lead parts get +6 dB).
STEMS = INSTRUMENTS + ("drums", "percussion", "vocals", "choir")
BASE_POWER = {"piano": 0.5, "harpsichord": 0.45, "guitar": 0.5, "bass": 0.6, "strings": 0.4, "brass": 0.4,
              "winds": 0.35, "organ": 0.35, "accordion": 0.4, "sitar": 0.5, "synth_lead": 0.4,
              "synth_pad": 0.3, "drums": 0.8, "percussion": 0.3, "vocals": 0.6, "choir": 0.35}
LEAD_BOOST = 3.0  # power factor (+4.8 dB) for the instrument that carries the melody
DISTORTED_BOOST = 2.5  # power factor (+4 dB): distorted guitars sit loud in a mix
# How acoustic each stem sounds (acousticness = power-weighted mean, §5.1's example tag).
ACOUSTIC = {"piano": 1.0, "harpsichord": 1.0, "strings": 1.0, "brass": 1.0, "winds": 1.0, "organ": 0.5,
            "accordion": 1.0, "sitar": 1.0, "synth_lead": 0.0, "synth_pad": 0.0, "percussion": 1.0,
            "vocals": 1.0, "choir": 1.0}
ACOUSTIC_GUITAR = {"nylon": 1.0, "steel": 1.0, "electric": 0.4}
ACOUSTIC_BASS = {"upright": 1.0, "electric": 0.4, "synth": 0.0}
ACOUSTIC_DRUMS = {"drum_kit": 1.0, "electronic_drums": 0.0}
DISTORTED_ACOUSTIC = 0.1  # a distorted guitar or bass counts as this acoustic
# How much treble each stem contributes (brightness mixes this with the master tone control).
BRIGHT = {"piano": 0.5, "harpsichord": 0.85, "guitar": 0.55, "bass": 0.1, "strings": 0.5, "brass": 0.75,
          "winds": 0.45, "organ": 0.5, "accordion": 0.65, "sitar": 0.8, "synth_lead": 0.8, "synth_pad": 0.3,
          "drums": 0.7, "percussion": 0.7, "vocals": 0.5, "choir": 0.4}
BRIGHT_DISTORTED = 0.95


@dataclass(frozen=True)
class Style:
    """How one subgenre sounds.  Probabilities are per artist unless marked per clip."""

    tempo: tuple[float, float] = (90.0, 130.0)  # beats per minute (the dotted quarter in 6/8)
    meter: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)  # duple, triple, compound duple, odd
    feel: tuple[float, float, float] = (1.0, 0.0, 0.0)  # straight, swing, shuffle
    grid: int = 2  # subdivisions per beat of melody and hats: 2 (8ths) or 4 (16ths)
    syncopation: float = 0.3  # per clip
    drums: tuple[float, float, float] = (0.0, 1.0, 0.0)  # none, drum kit, electronic drums
    drum_style: str = "rock"
    backbeat: tuple[float, float] = (0.3, 0.9)  # range of snare emphasis on the back-beats
    percussion: float = 0.0
    percussion_style: str = "shaker"
    instruments: dict = field(default_factory=dict)  # instrument -> probability an artist uses it
    guitar: tuple[float, float, float] = (0.0, 0.3, 0.7)  # nylon, steel, electric
    bass: tuple[float, float, float] = (0.0, 1.0, 0.0)  # upright, electric, synth
    distortion: float = 0.0  # probability the guitar (and for metal the bass) is distorted
    bass_distortion: bool = False
    vocals: float = 0.8  # probability an artist sings; a singing artist's clips have vocals 90 % of the time
    high_register: float = 0.5
    gritty: float = 0.1
    rapped: float = 0.0
    choir: float = 0.0
    major: float = 0.6  # per clip, around the artist's own leaning
    chromatic: float = 0.1  # per clip
    live: float = 0.15  # an artist's share of live recordings
    tone: tuple[float, float] = (0.3, 0.8)  # master tone control (dull .. bright)
    intensity: tuple[float, float] = (0.3, 0.7)  # playing intensity (soft .. hard)
    progression: str = "pop"
    bass_style: str = "groove"
    comp_style: str = "block"
    melody: str = "song"
    lead_order: tuple[str, ...] = ("synth_lead", "guitar", "piano", "brass", "winds", "strings", "organ")
    chord_default: str = "piano"
    echo: bool = False  # dub delays
    rubato: bool = False  # romantic tempo breathing
    winds_kind: str = "flute"  # flute | clarinet | sax | harmonica
    brass_kind: str = "section"  # trumpet | section | horn


def _style(base: Style, **overrides) -> Style:
    """A subgenre as its genre's style with a few differences; instrument dicts merge."""
    instruments = dict(base.instruments)
    instruments.update(overrides.pop("instruments", {}))
    return replace(base, instruments=instruments, **overrides)


_ROCK = Style(tempo=(100, 150), meter=(0.9, 0.06, 0.03, 0.01), feel=(0.85, 0.0, 0.15), syncopation=0.35,
              drums=(0.03, 0.97, 0.0), drum_style="rock", instruments={"guitar": 1.0, "bass": 0.95, "piano": 0.2,
              "organ": 0.15, "strings": 0.05, "synth_pad": 0.05}, guitar=(0.0, 0.15, 0.85), distortion=0.4,
              vocals=0.85, high_register=0.3, gritty=0.3, major=0.6, chromatic=0.08, live=0.25, tone=(0.4, 0.85),
              intensity=(0.45, 0.85), progression="rock", bass_style="root8", comp_style="strum",
              lead_order=("guitar", "organ", "piano", "synth_lead"), chord_default="guitar")
_POP = Style(tempo=(90, 130), meter=(0.95, 0.05, 0.0, 0.0), syncopation=0.6, drums=(0.05, 0.5, 0.45),
             drum_style="pop", instruments={"piano": 0.5, "guitar": 0.45, "bass": 0.9, "synth_pad": 0.45,
             "strings": 0.2, "synth_lead": 0.2, "brass": 0.05}, guitar=(0.0, 0.45, 0.55), bass=(0.0, 0.6, 0.4),
             vocals=0.97, high_register=0.6, gritty=0.05, major=0.7, chromatic=0.05, live=0.1, tone=(0.5, 0.9),
             intensity=(0.4, 0.8), progression="pop", bass_style="groove", comp_style="block")
_ELECTRONIC = Style(tempo=(118, 135), grid=4, syncopation=0.5, drums=(0.0, 0.0, 1.0), drum_style="four_floor",
                    instruments={"synth_pad": 0.7, "synth_lead": 0.7, "bass": 0.95, "piano": 0.1, "strings": 0.05},
                    bass=(0.0, 0.0, 1.0), vocals=0.15, high_register=0.75, major=0.3, chromatic=0.08, live=0.05,
                    tone=(0.4, 0.95), intensity=(0.55, 0.9), progression="vamp", bass_style="offbeat",
                    comp_style="sustain", melody="arp", lead_order=("synth_lead", "piano"),
                    chord_default="synth_pad")
_RAP = Style(tempo=(85, 100), grid=4, syncopation=0.8, drums=(0.0, 0.4, 0.6), drum_style="boom_bap",
             instruments={"bass": 0.95, "piano": 0.35, "strings": 0.25, "synth_lead": 0.2, "synth_pad": 0.25,
             "brass": 0.1, "guitar": 0.05}, bass=(0.0, 0.4, 0.6), vocals=1.0, high_register=0.2, gritty=0.2,
             rapped=1.0, major=0.3, live=0.1, tone=(0.3, 0.75), intensity=(0.45, 0.8), progression="loop",
             bass_style="sub", comp_style="stabs", melody="riff", lead_order=("synth_lead", "piano", "strings"),
             chord_default="piano")
_JAZZ = Style(tempo=(100, 220), meter=(0.75, 0.2, 0.0, 0.05), feel=(0.1, 0.9, 0.0), syncopation=0.7,
              drums=(0.05, 0.95, 0.0), drum_style="jazz", backbeat=(0.0, 0.3), instruments={"piano": 0.8,
              "bass": 0.95, "brass": 0.5, "winds": 0.55, "guitar": 0.2, "organ": 0.1, "strings": 0.05},
              guitar=(0.0, 0.0, 1.0), bass=(0.9, 0.1, 0.0), vocals=0.25, high_register=0.6, major=0.6,
              chromatic=0.7, live=0.45, tone=(0.3, 0.7), intensity=(0.3, 0.65), progression="jazz",
              bass_style="walking", comp_style="jazz_comp", melody="improv",
              lead_order=("winds", "brass", "guitar", "piano", "organ"), winds_kind="sax", brass_kind="trumpet")
_CLASSICAL = Style(tempo=(60, 140), meter=(0.55, 0.35, 0.1, 0.0), syncopation=0.1, drums=(1.0, 0.0, 0.0),
                   drum_style="none", instruments={"strings": 0.9, "piano": 0.4, "winds": 0.4, "brass": 0.2,
                   "bass": 0.3}, bass=(1.0, 0.0, 0.0), vocals=0.05, high_register=0.8, choir=0.08, major=0.6,
                   chromatic=0.3, live=0.5, tone=(0.2, 0.6), intensity=(0.1, 0.6), progression="classical",
                   bass_style="continuo", comp_style="sustain", melody="song",
                   lead_order=("strings", "winds", "piano", "harpsichord", "organ", "brass"),
                   chord_default="strings", winds_kind="clarinet", brass_kind="horn")
_FOLK = Style(tempo=(80, 140), meter=(0.6, 0.25, 0.15, 0.0), feel=(0.8, 0.0, 0.2), syncopation=0.3,
              drums=(0.6, 0.4, 0.0), drum_style="folk", instruments={"guitar": 0.95, "bass": 0.5, "strings": 0.35,
              "winds": 0.25, "piano": 0.15, "accordion": 0.1}, guitar=(0.2, 0.8, 0.0), bass=(0.5, 0.5, 0.0),
              vocals=0.85, high_register=0.5, major=0.7, chromatic=0.05, live=0.35, tone=(0.35, 0.7),
              intensity=(0.2, 0.6), progression="folk", bass_style="root_fifth", comp_style="strum",
              lead_order=("strings", "winds", "accordion", "guitar", "piano"), chord_default="guitar")
_BLUES = Style(tempo=(60, 120), meter=(0.9, 0.0, 0.1, 0.0), feel=(0.2, 0.0, 0.8), syncopation=0.3,
               drums=(0.3, 0.7, 0.0), drum_style="shuffle", instruments={"guitar": 1.0, "bass": 0.8, "piano": 0.4,
               "organ": 0.25, "brass": 0.15, "winds": 0.2}, guitar=(0.0, 0.3, 0.7), vocals=0.85,
               high_register=0.3, gritty=0.5, major=0.8, chromatic=0.85, live=0.35, tone=(0.3, 0.7),
               intensity=(0.3, 0.7), progression="blues", bass_style="walking", comp_style="strum",
               melody="improv", lead_order=("guitar", "winds", "piano", "organ", "brass"), chord_default="guitar",
               winds_kind="harmonica")
_LATIN = Style(tempo=(90, 200), meter=(0.95, 0.05, 0.0, 0.0), syncopation=0.95, drums=(0.2, 0.5, 0.3),
               drum_style="latin", backbeat=(0.1, 0.5), percussion=0.95, percussion_style="clave",
               instruments={"piano": 0.6, "brass": 0.5, "bass": 0.95, "guitar": 0.4, "winds": 0.25,
               "strings": 0.1}, guitar=(0.8, 0.2, 0.0), vocals=0.75, major=0.55, chromatic=0.2, live=0.35,
               tone=(0.45, 0.85), intensity=(0.4, 0.85), progression="latin", bass_style="tumbao",
               comp_style="montuno", lead_order=("brass", "winds", "piano", "guitar"), brass_kind="section",
               winds_kind="sax")
_DISCO = Style(tempo=(112, 128), grid=4, syncopation=0.6, drums=(0.0, 0.7, 0.3), drum_style="disco",
               instruments={"bass": 1.0, "strings": 0.8, "guitar": 0.7, "brass": 0.55, "piano": 0.35,
               "synth_pad": 0.25, "organ": 0.1}, guitar=(0.0, 0.0, 1.0), vocals=0.85, high_register=0.75,
               major=0.6, chromatic=0.15, live=0.1, tone=(0.6, 0.95), intensity=(0.6, 0.9), progression="disco",
               bass_style="octave", comp_style="funk", lead_order=("strings", "brass", "synth_lead", "piano"),
               chord_default="strings")
_REGGAE = Style(tempo=(65, 90), feel=(0.7, 0.3, 0.0), syncopation=0.8, drums=(0.0, 1.0, 0.0), drum_style="one_drop",
                backbeat=(0.0, 0.2), instruments={"bass": 1.0, "guitar": 0.95, "organ": 0.75, "piano": 0.3,
                "brass": 0.25}, guitar=(0.0, 0.0, 1.0), vocals=0.8, high_register=0.4, major=0.65, live=0.2,
                tone=(0.3, 0.6), intensity=(0.3, 0.6), progression="reggae", bass_style="reggae",
                comp_style="skank", lead_order=("brass", "organ", "guitar", "piano"), chord_default="guitar",
                brass_kind="section")
_WORLD = Style(tempo=(70, 160), drums=(0.6, 0.4, 0.0), drum_style="folk", percussion=0.6, vocals=0.6, live=0.4,
               tone=(0.4, 0.8), intensity=(0.3, 0.75), progression="folk", bass_style="root_fifth",
               comp_style="strum", chord_default="accordion")

# genre -> (share of the corpus, {subgenre: (share of the genre, style)}); a genre with one style
# under its own name has no subgenre tag.
GENRES: dict[str, tuple[float, dict[str, tuple[float, Style]]]] = {
    "rock": (0.17, {
        "light_rock": (0.35, _style(_ROCK, tempo=(85, 125), distortion=0.0, instruments={"piano": 0.45},
                                    guitar=(0.0, 0.5, 0.5), intensity=(0.3, 0.6), tone=(0.35, 0.7), major=0.75)),
        "hard_rock": (0.30, _style(_ROCK, tempo=(110, 150), distortion=1.0, intensity=(0.6, 0.9), gritty=0.6,
                                   major=0.45, tone=(0.55, 0.9), guitar=(0.0, 0.0, 1.0))),
        "punk": (0.20, _style(_ROCK, tempo=(160, 200), distortion=1.0, drum_style="punk", intensity=(0.75, 1.0),
                              gritty=0.7, instruments={"piano": 0.0, "organ": 0.0, "strings": 0.0, "synth_pad": 0.0},
                              meter=(1, 0, 0, 0), feel=(1, 0, 0), progression="punk", tone=(0.6, 0.95),
                              guitar=(0.0, 0.0, 1.0), syncopation=0.1)),
        "metal": (0.15, _style(_ROCK, tempo=(120, 190), distortion=1.0, bass_distortion=True, drum_style="metal",
                               major=0.1, chromatic=0.5, intensity=(0.8, 1.0), gritty=0.9, vocals=0.8,
                               high_register=0.2, tone=(0.5, 0.9), feel=(1, 0, 0), guitar=(0.0, 0.0, 1.0),
                               progression="metal", grid=4)),
    }),
    "pop": (0.16, {
        "dance_pop": (0.40, _style(_POP, tempo=(115, 130), drums=(0.0, 0.2, 0.8), drum_style="four_floor", grid=4,
                                   instruments={"synth_pad": 0.6, "synth_lead": 0.35}, intensity=(0.6, 0.9),
                                   bass=(0.0, 0.3, 0.7))),
        "ballad": (0.35, _style(_POP, tempo=(60, 85), drum_style="ballad", drums=(0.4, 0.6, 0.0),
                                instruments={"piano": 0.85, "strings": 0.5, "guitar": 0.3, "synth_pad": 0.2},
                                intensity=(0.1, 0.45), guitar=(0.0, 0.6, 0.4), major=0.55, tone=(0.3, 0.65),
                                meter=(0.8, 0.15, 0.05, 0.0), bass=(0.0, 0.8, 0.2), comp_style="arpeggio",
                                syncopation=0.2)),
        "synthpop": (0.25, _style(_POP, tempo=(100, 130), drums=(0.0, 0.05, 0.95), instruments={"synth_lead": 0.75,
                                  "synth_pad": 0.8, "guitar": 0.15, "piano": 0.15}, bass=(0.0, 0.1, 0.9),
                                  tone=(0.55, 0.95), intensity=(0.5, 0.8), bass_style="offbeat",
                                  comp_style="sustain", chord_default="synth_pad")),
    }),
    "electronic": (0.13, {
        "techno": (0.40, _style(_ELECTRONIC, tempo=(125, 140), vocals=0.03, major=0.1,
                                instruments={"synth_lead": 0.85}, intensity=(0.65, 0.95), drum_style="techno")),
        "house": (0.35, _style(_ELECTRONIC, tempo=(118, 128), instruments={"piano": 0.55, "organ": 0.15},
                               vocals=0.35, major=0.6, drum_style="house", comp_style="house", chord_default="piano")),
        "ambient": (0.25, _style(_ELECTRONIC, tempo=(60, 95), drums=(0.75, 0.0, 0.25), drum_style="ambient",
                                 instruments={"synth_pad": 1.0, "synth_lead": 0.3, "piano": 0.3, "strings": 0.25,
                                 "bass": 0.5}, intensity=(0.0, 0.3), tone=(0.1, 0.5), major=0.5,
                                 meter=(0.7, 0.2, 0.1, 0.0), choir=0.15, vocals=0.1, melody="sparse",
                                 bass_style="sub", live=0.0)),
    }),
    "rap": (0.10, {
        "east_coast": (0.40, _style(_RAP, tempo=(84, 96), drums=(0.0, 1.0, 0.0), feel=(0.3, 0.7, 0.0),
                                    instruments={"piano": 0.55, "strings": 0.35, "synth_lead": 0.0},
                                    major=0.15, tone=(0.25, 0.6), bass=(0.3, 0.4, 0.3))),
        "west_coast": (0.35, _style(_RAP, tempo=(88, 100), drums=(0.0, 0.0, 1.0), drum_style="gfunk",
                                    instruments={"synth_lead": 0.95, "synth_pad": 0.4, "piano": 0.15,
                                    "strings": 0.0}, major=0.6, bass=(0.0, 0.0, 1.0), tone=(0.5, 0.85),
                                    bass_style="groove")),
        "old_school": (0.25, _style(_RAP, tempo=(98, 112), drums=(0.0, 0.0, 1.0), drum_style="old_school",
                                    instruments={"piano": 0.1, "brass": 0.25, "guitar": 0.15, "synth_lead": 0.15,
                                    "strings": 0.0, "synth_pad": 0.0}, intensity=(0.5, 0.8), major=0.5,
                                    bass=(0.0, 0.3, 0.7), grid=2)),
    }),
    "jazz": (0.08, {
        "cool_jazz": (0.40, _style(_JAZZ, tempo=(90, 150), intensity=(0.15, 0.45), instruments={"winds": 0.7,
                                   "brass": 0.35}, drum_style="brushes", tone=(0.2, 0.5), live=0.3)),
        "hard_bop": (0.35, _style(_JAZZ, tempo=(160, 240), instruments={"brass": 0.8, "winds": 0.6},
                                  intensity=(0.5, 0.8), tone=(0.45, 0.8), live=0.6)),
        "fusion": (0.25, _style(_JAZZ, tempo=(100, 150), feel=(0.8, 0.2, 0.0), drum_style="fusion", grid=4,
                                instruments={"synth_lead": 0.5, "synth_pad": 0.3, "guitar": 0.5, "organ": 0.2},
                                bass=(0.1, 0.9, 0.0), meter=(0.6, 0.1, 0.0, 0.3), chromatic=0.8,
                                intensity=(0.5, 0.85), backbeat=(0.3, 0.8), bass_style="groove",
                                lead_order=("synth_lead", "guitar", "winds", "brass", "piano", "organ"))),
    }),
    "classical": (0.08, {
        "baroque_period": (0.40, _style(_CLASSICAL, instruments={"harpsichord": 0.75, "organ": 0.3, "piano": 0.0,
                                        "winds": 0.3, "brass": 0.15}, chromatic=0.15, tempo=(70, 130),
                                        major=0.55, comp_style="arpeggio", melody="motor", grid=4,
                                        chord_default="harpsichord", winds_kind="flute", brass_kind="trumpet")),
        "classical_period": (0.35, _style(_CLASSICAL, instruments={"piano": 0.75, "strings": 0.85, "winds": 0.45},
                                          chromatic=0.2, comp_style="alberti")),
        "romantic_period": (0.25, _style(_CLASSICAL, instruments={"strings": 0.95, "piano": 0.6, "brass": 0.45,
                                         "winds": 0.5}, chromatic=0.85, tempo=(50, 100), intensity=(0.1, 0.75),
                                         rubato=True, choir=0.15, comp_style="arpeggio")),
    }),
    "folk": (0.07, {
        "singer_songwriter": (0.60, _style(_FOLK, vocals=0.98, drums=(0.75, 0.25, 0.0), tempo=(70, 120),
                                           instruments={"strings": 0.2, "winds": 0.1}, intensity=(0.1, 0.45))),
        "celtic": (0.40, _style(_FOLK, meter=(0.3, 0.1, 0.6, 0.0), tempo=(95, 135), instruments={"strings": 0.8,
                                "winds": 0.7, "accordion": 0.3}, vocals=0.35, drums=(0.7, 0.3, 0.0),
                                percussion=0.3, percussion_style="bodhran", intensity=(0.4, 0.75), major=0.6,
                                melody="motor", winds_kind="flute")),
    }),
    "blues": (0.04, {
        "delta_blues": (0.45, _style(_BLUES, guitar=(0.0, 1.0, 0.0), drums=(0.9, 0.1, 0.0), instruments={
                                     "bass": 0.1, "piano": 0.1, "organ": 0.0, "brass": 0.0}, vocals=0.9,
                                     tempo=(60, 100), intensity=(0.15, 0.45), live=0.2)),
        "chicago_blues": (0.55, _style(_BLUES, guitar=(0.0, 0.0, 1.0), drums=(0.0, 1.0, 0.0), instruments={
                                       "bass": 0.95, "piano": 0.5, "winds": 0.3}, distortion=0.3,
                                       intensity=(0.45, 0.75))),
    }),
    "latin": (0.05, {
        "salsa": (0.55, _style(_LATIN, tempo=(160, 210), drums=(0.3, 0.7, 0.0), percussion=1.0,
                               instruments={"piano": 0.9, "brass": 0.85}, intensity=(0.65, 0.95))),
        "bossa_nova": (0.45, _style(_LATIN, tempo=(110, 145), drums=(0.3, 0.7, 0.0), drum_style="bossa",
                                    percussion=0.4, percussion_style="shaker", instruments={"guitar": 1.0,
                                    "piano": 0.3, "winds": 0.35, "brass": 0.1}, guitar=(1.0, 0.0, 0.0),
                                    intensity=(0.15, 0.45), chromatic=0.75, tone=(0.3, 0.6), comp_style="bossa",
                                    bass_style="root_fifth", progression="bossa", winds_kind="flute",
                                    lead_order=("winds", "guitar", "piano", "brass"), chord_default="guitar")),
    }),
    "disco": (0.03, {"disco": (1.0, _DISCO)}),
    "reggae": (0.03, {
        "roots_reggae": (0.60, _style(_REGGAE, vocals=0.9)),
        "dub": (0.40, _style(_REGGAE, vocals=0.15, echo=True, instruments={"organ": 0.5, "guitar": 0.8},
                             tone=(0.2, 0.5))),
    }),
    "world": (0.03, {
        "cajun": (0.50, _style(_WORLD, tempo=(100, 170), meter=(0.5, 0.5, 0.0, 0.0), instruments={"accordion": 1.0,
                               "strings": 0.9, "guitar": 0.7, "bass": 0.5}, guitar=(0.0, 1.0, 0.0),
                               bass=(1.0, 0.0, 0.0), percussion_style="triangle", high_register=0.5, major=0.9,
                               live=0.5, intensity=(0.4, 0.75), tone=(0.45, 0.8), comp_style="oompah",
                               lead_order=("accordion", "strings", "guitar"), winds_kind="flute")),
        "indian": (0.50, _style(_WORLD, tempo=(70, 140), meter=(0.5, 0.0, 0.0, 0.5), instruments={"sitar": 1.0,
                                "strings": 0.2, "winds": 0.35}, drums=(1.0, 0.0, 0.0), percussion=1.0,
                                percussion_style="tabla", major=0.4, chromatic=0.5, progression="drone",
                                bass_style="none", comp_style="sustain", melody="improv",
                                lead_order=("sitar", "winds", "strings"), chord_default="strings",
                                winds_kind="flute")),
    }),
}

# Flattened: one entry per subgenre, with its share of the whole corpus.
SUBGENRES: tuple[tuple[str, str, float, Style], ...] = tuple(
    (genre, sub, share * sub_share, style)
    for genre, (share, subs) in GENRES.items() for sub, (sub_share, style) in subs.items())

for _genre, _sub, _, _s in SUBGENRES:
    if not set(_s.lead_order) <= set(LEAD_INSTRUMENTS) or _s.chord_default not in CHORD_INSTRUMENTS:
        raise ValueError(f"taxonomy.py: style {_sub!r} names a lead or chord instrument that cannot play that role")

# ---- tags ---------------------------------------------------------------------------------------
REGRESSION_TAGS = ("acousticness", "tempo", "danceability", "brightness", "energy")
TAG_CATEGORIES: dict[str, tuple[str, ...]] = {
    "meter": ("duple_meter", "triple_meter", "compound_duple_meter", "odd_meter"),
    "rhythmic_feel": ("swing", "shuffle", "syncopation", "strong_backbeat", "four_on_the_floor"),
    "harmony": ("major", "minor", "chromatic"),
    "mood": ("happy", "sad", "aggressive", "calm", "dark"),
    "vocals": ("vocals", "low_register_vocals", "high_register_vocals", "gritty_vocals", "rapped_vocals", "choir"),
    "instrumentation": INSTRUMENTS[:3] + ("acoustic_guitar", "guitar_distortion") + INSTRUMENTS[3:]
    + ("drum_kit", "electronic_drums", "percussion"),
    "sonority": ("live", "studio", "distortion", "synthesized"),
    "genre": tuple(GENRES),
    "subgenre": tuple(sub for genre, sub, _, _ in SUBGENRES if sub != genre),
    "regression": REGRESSION_TAGS,
}
TAGS: tuple[str, ...] = tuple(t for names in TAG_CATEGORIES.values() for t in names)
CATEGORY_OF = {t: c for c, names in TAG_CATEGORIES.items() for t in names}
assert len(set(TAGS)) == len(TAGS), "tag names must be unique"

# Tags of which a clip has at most one (§5.1 'qualitative results' look at such pairs).
EXCLUSIVE_GROUPS: tuple[tuple[str, ...], ...] = (
    TAG_CATEGORIES["meter"],
    ("swing", "shuffle"),
    ("major", "minor"),
    ("live", "studio"),
    ("low_register_vocals", "high_register_vocals"),
    ("drum_kit", "electronic_drums"),
    ("happy", "sad"),
    ("calm", "aggressive"),
    TAG_CATEGORIES["genre"],
) + tuple(tuple(sub for sub in subs if sub != genre) for genre, (_, subs) in GENRES.items() if len(subs) > 1)
