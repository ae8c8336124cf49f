"""The captions of the synthetic videos: :class:`Event`, and each twin's wording of a sequence of events.

Every wording names the colour, the shape and the motion of each event in order, so what a caption says
can be learnt from the pixels (:mod:`centerclip.data.synthetic.render`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Event:
    """One thing that happens in a video: a ``colour`` ``shape`` doing ``motion`` (keys of
    :data:`~centerclip.data.synthetic.render.COLOURS`, :data:`~centerclip.data.synthetic.render.SHAPES`
    and :data:`~centerclip.data.synthetic.render.MOTIONS`)."""

    colour: str
    shape: str
    motion: str

    def phrase(self) -> str:
        """The plain wording: "a <colour> <shape> <motion>"."""
        return f"a {self.colour} {self.shape} {self.motion}"


def numbered_caption(events: tuple[Event, ...], variant: int = 0) -> str:
    """Caption number ``variant`` of ``events`` (the MSR-VTT twin's wording); variants are paraphrases
    describing the same content."""
    phrases = [e.phrase() for e in events]
    joiners = (", then ", " and then ", " followed by ", ". after that ")
    text = joiners[variant % len(joiners)].join(phrases)
    return text if variant % 2 == 0 else f"video of {text}"


# Paraphrases for the many-caption datasets. Every wording names the colour, the shape and the
# motion with words no other value uses, so two different event sequences never share a caption.
MOTION_WORDS = {
    "moves left": ("moves left", "is moving to the left", "goes left", "slides to the left"),
    "moves right": ("moves right", "is moving to the right", "goes right", "slides to the right"),
    "rises": ("rises", "is moving up", "goes up", "floats upwards"),
    "falls": ("falls", "is moving down", "goes down", "drops downwards"),
}
EVENT_TEMPLATES = ("a {colour} {shape} {motion}", "the {colour} {shape} {motion}",
                   "one {colour} {shape} {motion}", "a {shape} in {colour} {motion}")
JOINERS = (" then ", " and then ", " and after that ", " and next ")


def paraphrase(events: tuple[Event, ...], rng: np.random.Generator) -> str:
    """A random wording of ``events`` in order (lower case, no punctuation, like MSVD)."""
    phrases = [EVENT_TEMPLATES[rng.integers(len(EVENT_TEMPLATES))].format(
        colour=e.colour, shape=e.shape, motion=MOTION_WORDS[e.motion][rng.integers(len(MOTION_WORDS[e.motion]))])
        for e in events]
    text = phrases[0]
    for p in phrases[1:]:
        text += JOINERS[rng.integers(len(JOINERS))] + p
    return text


def lsmdc_sentence(events: tuple[Event, ...], rng: np.random.Generator) -> str:
    """One LSMDC-style sentence for ``events``: capitalised, ending with a full stop, sometimes with a lead-in."""
    text = ", then ".join(e.phrase() for e in events)
    style = int(rng.integers(3))
    if style == 0:
        return text[0].upper() + text[1:] + "."
    return ("SOMEONE watches as " if style == 1 else "On the screen, ") + text + "."


_AN_OPENERS = ("Then", "Next,", "After that,", "Later,")


def activitynet_sentences(events: tuple[Event, ...], rng: np.random.Generator) -> list[str]:
    """One sentence per event, in order; later sentences start with a space, as in the real files."""
    first = events[0].phrase()
    out = [first[0].upper() + first[1:] + "."]
    out += [f" {_AN_OPENERS[rng.integers(len(_AN_OPENERS))]} {e.phrase()}." for e in events[1:]]
    return out
