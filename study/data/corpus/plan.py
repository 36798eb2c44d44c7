"""Each clip's plan: what will be played, decided without rendering audio, and the tags it implies.

The plan is vectorised over clips (a million clips take seconds) and is a pure function of
(seed, clip index): the artist's choices come from streams keyed by the artist's first clip,
the clip's own choices from streams keyed by its index.  Tags are derived from the plan's
audible decisions only (what plays, how fast, in which meter and mode, how it is produced), and
the renderer plays exactly those decisions, so a tag never says more than the audio does.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.data.corpus import taxonomy as tx
from study.data.corpus.draws import Draws

ARTIST_PAGE = 4096  # artists never span a page, so one clip's artist needs at most this many draws
MEAN_CLIPS_PER_ARTIST = 8
CLIP_DROPOUT = 0.12  # chance an artist's instrument sits out one clip (unless the style needs it)
INSTRUMENTAL_SHARE = 0.1  # chance a singing artist's clip is instrumental
FOUR_ON_THE_FLOOR_STYLES = ("four_floor", "techno", "house", "disco")
BACKBEAT_STYLES = ("rock", "punk", "metal", "pop", "ballad", "four_floor", "house", "boom_bap", "gfunk",
                   "old_school", "shuffle", "disco", "fusion", "folk")
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def artist_of(seed: int, indices: np.ndarray) -> np.ndarray:
    """First clip index of each clip's artist: artists are runs of consecutive clips (mean 8)."""
    indices = np.asarray(indices, dtype=np.int64)
    out = np.empty_like(indices)
    pages = indices // ARTIST_PAGE
    for page in np.unique(pages):
        chosen = pages == page
        span = np.arange(page * ARTIST_PAGE, indices[chosen].max() + 1)
        starts = Draws(seed, span).uniform("artist.boundary") < 1.0 / MEAN_CLIPS_PER_ARTIST
        starts[0] = True
        first = np.maximum.accumulate(np.where(starts, span, span[0]))
        out[chosen] = first[indices[chosen] - span[0]]
    return out


class _StyleArrays:
    """The subgenre styles of ``taxonomy`` as arrays indexed by subgenre number."""

    def __init__(self) -> None:
        styles = [style for _, _, _, style in tx.SUBGENRES]
        self.genre = np.array([list(tx.GENRES).index(g) for g, _, _, _ in tx.SUBGENRES])
        self.weight = np.array([w for _, _, w, _ in tx.SUBGENRES])
        for name in ("tempo", "meter", "feel", "drums", "guitar", "bass", "tone", "intensity", "backbeat",
                     "syncopation", "percussion", "distortion", "vocals", "high_register", "gritty", "rapped",
                     "choir", "major", "chromatic", "live"):  # numbers and tuples of numbers
            setattr(self, name, np.array([getattr(s, name) for s in styles], dtype=np.float64))
        self.bass_distortion = np.array([s.bass_distortion for s in styles])
        self.instruments = np.array([[s.instruments.get(i, 0.0) for i in tx.INSTRUMENTS] for s in styles])
        rank = np.full((len(styles), len(tx.INSTRUMENTS)), 99)
        for row, s in enumerate(styles):
            for position, name in enumerate(s.lead_order):
                rank[row, tx.INSTRUMENTS.index(name)] = position
        self.lead_rank = rank
        self.first_lead = np.array([tx.INSTRUMENTS.index(s.lead_order[0]) for s in styles])
        self.chord_default = np.array([tx.INSTRUMENTS.index(s.chord_default) for s in styles])
        self.four_floor = np.array([s.drum_style in FOUR_ON_THE_FLOOR_STYLES for s in styles])
        self.backbeat_style = np.array([s.drum_style in BACKBEAT_STYLES for s in styles])


STYLES = _StyleArrays()
_INST = {name: i for i, name in enumerate(tx.INSTRUMENTS)}
_STEM = {name: i for i, name in enumerate(tx.STEMS)}


def plan_clips(seed: int, indices) -> dict[str, np.ndarray]:
    """Every decision for the given clips, as columns (one entry per clip)."""
    index = np.asarray(indices, dtype=np.int64)
    n = len(index)
    artist = artist_of(seed, index)
    a, c = Draws(seed, artist), Draws(seed, index)
    s = STYLES
    sub = a.choice("artist.subgenre", s.weight)

    # Tempo and meter: an artist keeps to a tempo and usually to one meter (§3 meter tags).
    low, high = s.tempo[sub, 0], s.tempo[sub, 1]
    centre = a.between("artist.tempo", low, high)
    bpm = np.clip(centre * (0.95 + 0.1 * c.uniform("clip.tempo")), low, high)
    meter = np.where(c.uniform("clip.keep_meter") < 0.85, a.choice("artist.meter", s.meter[sub]),
                     c.choice("clip.meter", s.meter[sub]))
    odd_beats = np.where(c.uniform("clip.odd_beats") < 0.6, 5, 7)
    beats = np.select([meter == 0, meter == 1, meter == 2], [4, 3, 2], odd_beats)
    feel = a.choice("artist.feel", s.feel[sub])
    feel = np.where((meter == 2) | ((feel == 2) & (meter != 0)), 0, feel)  # 6/8 swings already; shuffle is 4/4

    # Harmony (§3 harmonic tags): key and mode per clip around the artist's leaning.
    key = np.minimum((c.uniform("clip.key") * 12).astype(np.int64), 11)
    major = c.uniform("clip.major") < np.clip(s.major[sub] + 0.4 * (a.uniform("artist.major") - 0.5), 0.0, 1.0)
    chromatic = c.bernoulli("clip.chromatic", s.chromatic[sub])
    syncopation = c.bernoulli("clip.syncopation", s.syncopation[sub])

    # Line-up: an artist's instruments, each sitting out a clip now and then.
    lineup = np.stack([a.uniform(f"artist.instrument.{name}") < s.instruments[sub, i]
                       for i, name in enumerate(tx.INSTRUMENTS)], axis=1)
    keep = np.stack([c.uniform(f"clip.dropout.{name}") >= CLIP_DROPOUT for name in tx.INSTRUMENTS], axis=1)
    keep |= s.instruments[sub] >= 0.95  # a style's defining instruments always play
    inst = lineup & keep
    chords = np.array([_INST[name] for name in tx.CHORD_INSTRUMENTS])
    no_chords = ~inst[:, chords].any(axis=1)
    inst[np.arange(n)[no_chords], s.chord_default[sub][no_chords]] = True

    singer = a.bernoulli("artist.vocals", s.vocals[sub])
    lead_vocals = singer & (c.uniform("clip.instrumental") >= INSTRUMENTAL_SHARE)
    # The melody needs a voice: the singer, else the style's first lead instrument that plays.
    no_lead = ~lead_vocals & (np.where(inst, s.lead_rank[sub], 99).min(axis=1) == 99)
    inst[np.arange(n)[no_lead], s.first_lead[sub][no_lead]] = True
    lead = np.where(lead_vocals, -1, np.argmin(np.where(inst, s.lead_rank[sub], 99), axis=1))

    guitar_kind = a.choice("artist.guitar_kind", s.guitar[sub])
    distorted = inst[:, _INST["guitar"]] & a.bernoulli("artist.distortion", s.distortion[sub])
    guitar_kind = np.where(distorted, 2, guitar_kind)
    bass_kind = a.choice("artist.bass_kind", s.bass[sub])
    bass_distorted = inst[:, _INST["bass"]] & distorted & s.bass_distortion[sub]
    bass_kind = np.where(bass_distorted, 1, bass_kind)

    drums = a.choice("artist.drums", s.drums[sub])
    percussion = a.bernoulli("artist.percussion", s.percussion[sub])
    high_register = a.bernoulli("artist.high_register", s.high_register[sub])
    gritty = a.bernoulli("artist.gritty", s.gritty[sub])
    rapped = a.bernoulli("artist.rapped", s.rapped[sub])
    choir = a.bernoulli("artist.choir", s.choir[sub])

    # Production: live recordings (an artist's propensity), tone and intensity around the artist's.
    live = c.uniform("clip.live") < a.uniform("artist.live") * 2.0 * s.live[sub]
    tone = _around(np.clip(a.between("artist.tone", s.tone[sub, 0] - 0.2, s.tone[sub, 1] + 0.2), 0.0, 1.0),
                   c.uniform("clip.tone"), 0.15)
    intensity = _around(a.between("artist.intensity", s.intensity[sub, 0], s.intensity[sub, 1]),
                        c.uniform("clip.intensity"), 0.15)
    backbeat = a.between("artist.backbeat", s.backbeat[sub, 0], s.backbeat[sub, 1])

    # Mix: each present stem's power (the renderer normalises every stem to exactly this).
    present = np.zeros((n, len(tx.STEMS)), dtype=bool)
    present[:, :len(tx.INSTRUMENTS)] = inst
    present[:, _STEM["drums"]] = drums > 0
    present[:, _STEM["percussion"]] = percussion
    present[:, _STEM["vocals"]] = lead_vocals
    present[:, _STEM["choir"]] = choir
    level = np.stack([0.6 + 0.8 * a.uniform(f"artist.level.{stem}") for stem in tx.STEMS], axis=1)
    power = np.array([tx.BASE_POWER[stem] for stem in tx.STEMS]) * level * present
    is_lead = np.zeros_like(present)
    is_lead[np.arange(n)[lead >= 0], lead[lead >= 0]] = True
    is_lead[:, _STEM["vocals"]] = lead_vocals
    power = np.where(is_lead, power * tx.LEAD_BOOST, power)
    power[:, _STEM["guitar"]] *= np.where(distorted, tx.DISTORTED_BOOST, 1.0)

    plan = dict(seed=np.full(n, seed, dtype=np.int64), index=index, artist=artist, subgenre=sub, genre=s.genre[sub], bpm=bpm, meter=meter, beats=beats,
                feel=feel, key=key, major=major, chromatic=chromatic, syncopation=syncopation, inst=inst,
                lead=lead, guitar_kind=guitar_kind, guitar_distorted=distorted, bass_kind=bass_kind,
                bass_distorted=bass_distorted, drums=drums, percussion=percussion, lead_vocals=lead_vocals,
                high_register=high_register, gritty=gritty, rapped=rapped, choir=choir, live=live, tone=tone,
                intensity=intensity, backbeat=backbeat, power=power,
                start=c.uniform("clip.start"))  # where in the first bar the clip starts
    plan.update(_derived(plan))
    return plan


def _around(centre: np.ndarray, u: np.ndarray, spread: float) -> np.ndarray:
    return np.clip(centre + spread * (u - 0.5) * 2.0, 0.0, 1.0)


def _weighted(power: np.ndarray, weights: np.ndarray) -> np.ndarray:
    total = power.sum(axis=1)
    return (power * weights).sum(axis=1) / np.where(total > 0, total, 1.0)


def _derived(p: dict) -> dict:
    """Continuous descriptors (§5.1 regression tags) and rhythm facts, from the audible decisions."""
    n = len(p["index"])
    acoustic = np.tile([tx.ACOUSTIC.get(stem, 0.0) for stem in tx.STEMS], (n, 1))
    acoustic[:, _STEM["guitar"]] = np.where(p["guitar_distorted"], tx.DISTORTED_ACOUSTIC,
                                            np.array([tx.ACOUSTIC_GUITAR[k] for k in tx.GUITAR_KINDS])[p["guitar_kind"]])
    acoustic[:, _STEM["bass"]] = np.where(p["bass_distorted"], tx.DISTORTED_ACOUSTIC,
                                          np.array([tx.ACOUSTIC_BASS[k] for k in tx.BASS_KINDS])[p["bass_kind"]])
    acoustic[:, _STEM["drums"]] = p["drums"] == 1
    bright = np.tile([tx.BRIGHT[stem] for stem in tx.STEMS], (n, 1))
    bright[:, _STEM["guitar"]] = np.where(p["guitar_distorted"], tx.BRIGHT_DISTORTED, bright[:, _STEM["guitar"]])
    bright[:, _STEM["bass"]] = np.where(p["bass_distorted"], tx.BRIGHT_DISTORTED, bright[:, _STEM["bass"]])

    tempo = np.clip((p["bpm"] - 50.0) / 150.0, 0.0, 1.0)
    has_drums = p["drums"] > 0
    distortion = p["guitar_distorted"] | p["bass_distorted"]
    sub = p["subgenre"]
    four_floor = has_drums & STYLES.four_floor[sub] & (p["meter"] == 0)
    strong_backbeat = (has_drums & STYLES.backbeat_style[sub] & (p["backbeat"] >= 0.5)
                       & ((p["meter"] == 0) | (p["meter"] == 2)))
    groove = np.where(p["meter"] == 0, 1.0, np.where(p["meter"] == 3, 0.3, 0.6))
    tempo_fit = np.clip(1.0 - np.abs(p["bpm"] - 122.0) / 60.0, 0.0, 1.0)
    danceability = np.clip(0.05 + 0.3 * has_drums * groove + 0.2 * (four_floor | strong_backbeat)
                           + 0.25 * tempo_fit + 0.1 * p["syncopation"] + 0.1 * p["intensity"]
                           - 0.1 * (p["feel"] == 1), 0.0, 1.0)
    energy = np.clip(0.55 * p["intensity"] + 0.2 * tempo + 0.15 * has_drums + 0.1 * distortion, 0.0, 1.0)
    instrumental = p["power"].copy()  # acousticness judges the instruments; voices are neither
    instrumental[:, [_STEM["vocals"], _STEM["choir"]]] = 0.0
    return dict(acousticness=_weighted(instrumental, acoustic), tempo=tempo, danceability=danceability,
                brightness=np.clip(0.8 * p["tone"] + 0.2 * _weighted(p["power"], bright), 0.0, 1.0),
                energy=energy, four_on_the_floor=four_floor, strong_backbeat=strong_backbeat, distortion=distortion)


def tag_matrix(p: dict) -> np.ndarray:
    """Labels (n_clips, len(TAGS)) in ``taxonomy.TAGS`` order: classification tags 0/1, regression tags in [0, 1]."""
    n = len(p["index"])
    minor, bpm, energy = ~p["major"], p["bpm"], p["energy"]
    lead_vocals = p["lead_vocals"]
    value: dict[str, np.ndarray] = {
        "duple_meter": p["meter"] == 0, "triple_meter": p["meter"] == 1,
        "compound_duple_meter": p["meter"] == 2, "odd_meter": p["meter"] == 3,
        "swing": p["feel"] == 1, "shuffle": p["feel"] == 2, "syncopation": p["syncopation"],
        "strong_backbeat": p["strong_backbeat"], "four_on_the_floor": p["four_on_the_floor"],
        "major": p["major"], "minor": minor, "chromatic": p["chromatic"],
        # Moods follow what a listener hears: mode, tempo, intensity, distortion (§3 mood tags).
        "happy": p["major"] & (bpm >= 100) & ~p["chromatic"] & ~p["distortion"] & (energy >= 0.45),
        "sad": minor & (bpm < 95) & (energy < 0.45),
        "aggressive": (p["distortion"] & (energy >= 0.65)) | (minor & (bpm >= 150) & (energy >= 0.7)),
        "calm": energy < 0.3,
        "dark": minor & (p["chromatic"] | (p["brightness"] < 0.35)),
        "vocals": lead_vocals | p["choir"], "low_register_vocals": lead_vocals & ~p["high_register"],
        "high_register_vocals": lead_vocals & p["high_register"], "gritty_vocals": lead_vocals & p["gritty"],
        "rapped_vocals": lead_vocals & p["rapped"], "choir": p["choir"],
        "acoustic_guitar": p["inst"][:, _INST["guitar"]] & (p["guitar_kind"] < 2),
        "guitar_distortion": p["guitar_distorted"],
        "drum_kit": p["drums"] == 1, "electronic_drums": p["drums"] == 2, "percussion": p["percussion"],
        "live": p["live"], "studio": ~p["live"], "distortion": p["distortion"],
        "synthesized": p["acousticness"] < 0.2,
    }
    for name, i in _INST.items():
        value[name] = p["inst"][:, i]
    genres = list(tx.GENRES)
    for g, name in enumerate(genres):
        value[name] = p["genre"] == g
    for s, (genre, sub, _, _) in enumerate(tx.SUBGENRES):
        if sub != genre:
            value[sub] = p["subgenre"] == s
    for name in tx.REGRESSION_TAGS:
        value[name] = p[name]
    labels = np.empty((n, len(tx.TAGS)), dtype=np.float32)
    for j, tag in enumerate(tx.TAGS):
        labels[:, j] = value[tag]
    return labels


def describe(p: dict) -> pd.DataFrame:
    """Readable columns for the track table (genre, tempo, meter, key ...)."""
    subs = [sub for _, sub, _, _ in tx.SUBGENRES]
    meter_names = np.array(["4/4", "3/4", "6/8", "odd"])[p["meter"]]
    meter_names = np.where(p["meter"] == 3, np.char.add(p["beats"].astype(str), "/4"), meter_names)
    return pd.DataFrame({
        "clip_index": p["index"], "artist": [f"artist{a:07d}" for a in p["artist"]],
        "genre": np.array(list(tx.GENRES))[p["genre"]], "subgenre": np.array(subs)[p["subgenre"]],
        "bpm": np.round(p["bpm"], 2), "meter": meter_names,
        "key": [f"{KEY_NAMES[k]} {'major' if m else 'minor'}" for k, m in zip(p["key"], p["major"])],
        "live": p["live"],
    })


def plan_row(p: dict, i: int) -> dict:
    """One clip's plan as plain Python/NumPy scalars (what the renderer reads)."""
    return {name: (column[i] if column.ndim == 1 else column[i].copy()) for name, column in p.items()}
