"""Keys, chords and progressions (§3 harmonic tags: major, minor, chromatic).

Progressions are written as Roman numerals relative to the key's own scale (``V`` in a minor
key is the major dominant, ``bII`` the Neapolitan), one chord per bar.  The ``*_chromatic``
lists hold chords from outside the key (borrowed, secondary dominants, tritone substitutes) so
that a clip tagged chromatic sounds pitch classes a diatonic clip never does: at least half
of a chromatic progression's chords (a third of a blues chorus) leave the key.
"""
from __future__ import annotations

import re

import numpy as np

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
BLUES_SCALE = (0, 3, 5, 6, 7, 10)  # minor pentatonic + flat fifth: the blue notes over major chords
MAJOR_PENTATONIC = (0, 2, 4, 7, 9)
RAGA_MAJOR = (0, 1, 4, 5, 7, 8, 11)  # Bhairav: flat 2nd and 6th over a major third
RAGA_MINOR = (0, 1, 3, 5, 7, 8, 10)  # Phrygian-like: flat 2nd over a minor key

# suffix -> intervals above the root; the numeral's case picks major/minor where the suffix does not
_QUALITIES = {"": None, "7": None, "maj7": (0, 4, 7, 11), "o": (0, 3, 6), "ø": (0, 3, 6, 10), "5": (0, 7, 12),
              "sus": (0, 5, 7)}
_NUMERALS = ("i", "ii", "iii", "iv", "v", "vi", "vii")
_TOKEN = re.compile(r"^(b|#)?(i{1,3}|iv|v|vi{0,2}|I{1,3}|IV|V|VI{0,2})(maj7|7|o|ø|5|sus)?$")

PROGRESSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "pop": {"major": ("I V vi IV", "I vi IV V", "vi IV I V", "I IV vi V"),
            "minor": ("i VI III VII", "i iv VI VII", "i VII VI VII"),
            "major_chromatic": ("I bVI bVII I", "I III7 VI7 IV", "I iv bVI V7"),
            "minor_chromatic": ("i bII IV V", "i IV bII V", "i #ivo bII V")},
    "rock": {"major": ("I IV I V", "I V IV IV", "vi IV I V", "I IV V IV"),
             "minor": ("i VII VI VII", "i iv VII III", "i VI VII i"),
             "major_chromatic": ("I bVII bVI bVII", "I bIII IV bVII", "I bVI bVII I"),
             "minor_chromatic": ("i bII IV i", "i IV bII VII", "i bV IV i")},
    "punk": {"major": ("I IV V V", "I V vi IV", "I IV I V"), "minor": ("i VI VII i", "i iv VII i"),
             "major_chromatic": ("I bIII IV bVII", "I bVII bVI V"), "minor_chromatic": ("i bII IV VII", "i IV bII V")},
    "metal": {"major": ("I IV V I",), "minor": ("i i VI VII", "i iv v i", "i VI iv v"),
              "major_chromatic": ("I bII bVII bII",), "minor_chromatic": ("i bII i bV", "i bII bV VII", "i bV bII iv")},
    "vamp": {"major": ("I I IV IV", "I vi I vi", "I IV I V"), "minor": ("i i VI VII", "i i iv iv", "i VII i VII"),
             "major_chromatic": ("I bVI I bVI", "I bIII bVII IV"), "minor_chromatic": ("i bII i bII", "i IV bII IV")},
    "loop": {"major": ("I ii I ii", "I IV I IV", "Imaj7 vi7 ii7 V7"), "minor": ("i i iv iv", "i VI i VI", "i iv VI v"),
             "major_chromatic": ("Imaj7 iv Imaj7 iv", "I bVII IV bVII"),
             "minor_chromatic": ("i bII i bII", "i IV bII IV")},
    "jazz": {"major": ("ii7 V7 Imaj7 Imaj7", "Imaj7 vi7 ii7 V7", "iii7 vi7 ii7 V7"),
             "minor": ("iiø V7 i7 i7", "i7 iv7 VII7 IIImaj7"),
             "major_chromatic": ("Imaj7 VI7 II7 V7", "ii7 bII7 Imaj7 VI7", "Imaj7 #io II7 bII7"),
             "minor_chromatic": ("i7 bII7 IV7 V7", "i7 IV7 bIImaj7 V7", "iiø bII7 i7 IV7")},
    "classical": {"major": ("I IV V I", "I vi ii V", "I IV I V"), "minor": ("i iv V i", "i VI iv V", "i iio V i"),
                  "major_chromatic": ("I II7 iv V", "I iv bVI V7", "I bVI II7 V"),
                  "minor_chromatic": ("i bII #ivo V", "i IV7 bII V", "i bII IV V")},
    "folk": {"major": ("I IV I V", "I V IV I", "I IV V I"), "minor": ("i VII i VII", "i III VII i", "i iv i VII"),
             "major_chromatic": ("I bVII bVI I", "I II7 iv I"), "minor_chromatic": ("i IV i IV", "i bII IV VII")},
    "blues": {"major": ("I I I I IV IV I I V IV I V",), "minor": ("i i i i iv iv i i v iv i v",),
              "major_chromatic": ("I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7", "I7 IV7 I7 I7 IV7 IV7 I7 VI7 ii7 V7 I7 V7"),
              "minor_chromatic": ("i7 IV7 i7 i7 iv7 IV7 i7 i7 bII7 V7 i7 bII7",)},
    "latin": {"major": ("I IV V IV", "I V V I", "ii V I I"), "minor": ("i iv V i", "i VII VI V"),
              "major_chromatic": ("I bVII IV bVII", "I VI7 II7 V7"), "minor_chromatic": ("i bII IV V", "i IV7 bII7 V7")},
    "bossa": {"major": ("Imaj7 ii7 iii7 ii7", "Imaj7 vi7 ii7 V7"), "minor": ("i7 iv7 i7 V7", "i7 VImaj7 iiø V7"),
              "major_chromatic": ("Imaj7 II7 ii7 bII7", "Imaj7 bIIImaj7 bVImaj7 bII7", "Imaj7 VI7 II7 V7"),
              "minor_chromatic": ("i7 IV7 i7 bII7", "i7 bIImaj7 IV7 V7")},
    "disco": {"major": ("ii7 V7 ii7 V7", "I vi ii V", "Imaj7 IV Imaj7 IV"), "minor": ("i7 iv7 i7 iv7", "i VII VI VII"),
              "major_chromatic": ("I bVII IV bVII", "Imaj7 III7 VI7 V7"), "minor_chromatic": ("i7 IV7 i7 IV7", "i bII7 IV VII")},
    "reggae": {"major": ("I IV I V", "I V IV V", "I ii I ii"), "minor": ("i iv i iv", "i VII i VII"),
               "major_chromatic": ("I bVII I bVII", "I bIII IV bVII"), "minor_chromatic": ("i IV i IV", "i bII i bII")},
    "drone": {"major": ("I I I I",), "minor": ("i i i i",), "major_chromatic": ("I bII I bII",),
              "minor_chromatic": ("i bII i bII",)},
}


def parse_chord(token: str, major: bool) -> tuple[int, tuple[int, ...]]:
    """Roman numeral -> (root in semitones above the tonic, intervals above the root)."""
    match = _TOKEN.match(token)
    if not match:
        raise ValueError(f"harmony.py: cannot read chord {token!r}; expected e.g. 'V7', 'bVI', 'iiø', 'Imaj7'")
    accidental, numeral, suffix = match.group(1) or "", match.group(2), match.group(3) or ""
    scale = MAJOR_SCALE if major else MINOR_SCALE
    root = scale[_NUMERALS.index(numeral.lower())] + {"": 0, "b": -1, "#": 1}[accidental]
    upper = numeral.isupper()
    intervals = _QUALITIES[suffix]
    if intervals is None:
        if suffix == "7":
            intervals = (0, 4, 7, 10) if upper else (0, 3, 7, 10)
        else:
            intervals = (0, 4, 7) if upper else (0, 3, 7)
    return root % 12, intervals


def progression(family: str, major: bool, chromatic: bool, choice: float) -> list[tuple[int, tuple[int, ...]]]:
    """One progression of a family, picked by ``choice`` in [0, 1)."""
    kind = ("major" if major else "minor") + ("_chromatic" if chromatic else "")
    options = PROGRESSIONS[family][kind]
    text = options[min(int(choice * len(options)), len(options) - 1)]
    return [parse_chord(token, major) for token in text.split()]


def melody_scale(family: str, major: bool, chromatic: bool) -> np.ndarray:
    """Pitch classes above the tonic that melodies use."""
    if family == "blues":
        return np.array(BLUES_SCALE if chromatic else (MAJOR_PENTATONIC if major else (0, 3, 5, 7, 10)))
    if family == "drone" and chromatic:
        return np.array(RAGA_MAJOR if major else RAGA_MINOR)
    return np.array(MAJOR_SCALE if major else MINOR_SCALE)


def voicing(root_pc: int, intervals: tuple[int, ...], centre: float) -> np.ndarray:
    """Close voicing of a chord (MIDI notes) whose mean lies nearest ``centre`` (smooth voice leading)."""
    pcs = [(root_pc + i) % 12 for i in intervals[:4]]
    best, best_distance = None, np.inf
    for rotation in range(len(pcs)):
        order = pcs[rotation:] + pcs[:rotation]
        notes = [order[0] + 12 * int(np.floor((centre - 6 - order[0]) / 12.0)) + 12]
        for pc in order[1:]:
            step = (pc - notes[-1]) % 12 or 12
            notes.append(notes[-1] + step)
        notes = np.array(notes)
        for shift in (-12, 0, 12):
            distance = abs(notes.mean() + shift - centre)
            if distance < best_distance:
                best, best_distance = notes + shift, distance
    return best
