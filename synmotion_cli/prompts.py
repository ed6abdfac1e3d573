"""Prompt roles: which characters of a prompt name the subject, the motion and the extensions.

SynMotion splits a prompt of the form ``<subject> <motion>[ extensions]`` by role, e.g.
"a red fox is clapping at night, cut paper style" -> subject "a red fox", motion "clapping",
extensions "at night, cut paper style". The backend maps these character spans to token spans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsageError

# Past tenses that regular rules get wrong, for verbs people commonly use as motions.
_IRREGULAR_PAST = {
    "be": "was", "begin": "began", "bend": "bent", "bite": "bit", "blow": "blew", "break": "broke",
    "catch": "caught", "climb": "climbed", "come": "came", "dig": "dug", "do": "did", "draw": "drew",
    "drink": "drank", "drive": "drove", "eat": "ate", "fall": "fell", "fight": "fought", "fly": "flew",
    "get": "got", "give": "gave", "go": "went", "grab": "grabbed", "hang": "hung", "hit": "hit",
    "hold": "held", "kneel": "knelt", "leap": "leapt", "lie": "lay", "make": "made", "ride": "rode",
    "rise": "rose", "run": "ran", "see": "saw", "shake": "shook", "shoot": "shot", "sing": "sang", "sit": "sat",
    "sleep": "slept", "slide": "slid", "spin": "spun", "stand": "stood", "steal": "stole",
    "sting": "stung", "strike": "struck", "swim": "swam", "swing": "swung", "take": "took",
    "tear": "tore", "throw": "threw", "wake": "woke", "wear": "wore", "win": "won",
}
_IRREGULAR_THIRD = {"be": "is", "have": "has"}
# Auxiliaries between subject and motion ("a fox is clapping") belong to neither role.
_AUXILIARIES = {"is", "are", "was", "were", "be", "been", "being", "keeps", "keep", "starts", "start"}
_VOWELS = set("aeiou")
_PROMPT_FORM = '"<subject> <motion>[, style/background]"'


def _double_final(word: str) -> bool:
    """One-syllable consonant-vowel-consonant verbs double their last letter: clap -> clapping.

    Longer verbs mostly stress an earlier syllable (open -> opening), so they are left alone.
    """
    if len(word) < 3 or word[-1] in _VOWELS or word[-1] in "wxy":
        return False
    if word[-2] not in _VOWELS or word[-3] in _VOWELS:
        return False
    syllables = re.findall(r"[aeiouy]+", word)
    return len(syllables) == 1


def third_person(verb: str) -> str:
    """clap -> claps, punch -> punches, go -> goes, cry -> cries."""
    if verb in _IRREGULAR_THIRD:
        return _IRREGULAR_THIRD[verb]
    if re.search(r"(s|sh|ch|x|z|o)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


def gerund(verb: str) -> str:
    """clap -> clapping, wave -> waving, tie -> tying, see -> seeing."""
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not re.search(r"(ee|ye|oe)$", verb) and verb != "be":
        return verb[:-1] + "ing"
    if _double_final(verb):
        return verb + verb[-1] + "ing"
    return verb + "ing"


def past(verb: str) -> str:
    """clap -> clapped, wave -> waved, cry -> cried, run -> ran."""
    if verb in _IRREGULAR_PAST:
        return _IRREGULAR_PAST[verb]
    if verb.endswith("e"):
        return verb + "d"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ied"
    if _double_final(verb):
        return verb + verb[-1] + "ed"
    return verb + "ed"


def inflections(word: str) -> list[str]:
    """The base form, third person, gerund and past of a verb or verb phrase, in that order.

    A phrase inflects its first word: "sit down" -> "sits down", "do a handstand" -> "does a handstand".
    """
    first, _, rest = word.strip().lower().partition(" ")
    if not first:
        return []
    tail = f" {rest.strip()}" if rest.strip() else ""
    forms = [first, third_person(first), gerund(first), past(first)]
    return list(dict.fromkeys(f + tail for f in forms))


@dataclass(frozen=True)
class PromptRoles:
    """A prompt and the character spans ``(start, end)`` of its roles inside ``text``."""

    text: str
    subject: tuple[int, int]
    motion: tuple[int, int]
    extensions: tuple[int, int]

    def part(self, role: str) -> str:
        start, end = getattr(self, role)
        return self.text[start:end]

    @property
    def subject_text(self) -> str:
        return self.part("subject")

    @property
    def motion_text(self) -> str:
        return self.part("motion")

    @property
    def extensions_text(self) -> str:
        return self.part("extensions")


def compose(prompt: str, style: str | None = None, background: str | None = None) -> str:
    """Append a background and a style the way the paper writes them: "a zebra walks on grass, pixel art style"."""
    text = prompt.strip().rstrip(".").rstrip()
    if background and background.strip():
        text += " " + background.strip()
    if style and style.strip():
        style = style.strip()
        text += ", " + (style if re.search(r"\bstyle\b", style, re.IGNORECASE) else f"{style} style")
    return text


def motion_words(trigger_words: list[str] | tuple[str, ...]) -> list[str]:
    """Every form that counts as the motion: each trigger word and its inflections."""
    words: list[str] = []
    for trigger in trigger_words:
        words += [trigger.strip().lower()] + inflections(trigger)
    return [w for w in dict.fromkeys(words) if w]


def _usage_error(prompt: str, what: str, forms: list[str], example_motion: str) -> UsageError:
    shown = ", ".join(forms[:12]) + ("…" if len(forms) > 12 else "")
    return UsageError(
        f'{what} in "{prompt}": expected {_PROMPT_FORM}, e.g. "a panda {example_motion}, cut paper style"; '
        f"motion words: {shown}",
        hint="write who moves first, then one of the motion words",
    )


def _strip_span(text: str, start: int, end: int, chars: str) -> tuple[int, int]:
    while start < end and text[start] in chars:
        start += 1
    while end > start and text[end - 1] in chars:
        end -= 1
    return start, end


def parse_roles(
    prompt: str,
    trigger_words: list[str] | tuple[str, ...],
    style: str | None = None,
    background: str | None = None,
) -> PromptRoles:
    """Find subject, motion and extensions in ``prompt`` (after appending style and background).

    The motion is the first whole-word, case-insensitive match of any inflected trigger word (the longest
    one where several start at the same place). The subject is the text before it without surrounding
    punctuation and without a trailing auxiliary ("is", "are" …), which stays in the prompt but in no role.
    Extensions are the rest of the prompt after the motion, without leading punctuation; they may be empty.
    """
    text = compose(prompt, style, background)
    forms = motion_words(trigger_words)
    if not forms:
        raise UsageError("no motion words given", hint="name the motion, e.g. `clap`")
    example = third_person(forms[0].split(" ")[0]) + forms[0][len(forms[0].split(" ")[0]):]
    alternatives = sorted(forms, key=len, reverse=True)
    pattern = r"(?<!\w)(" + "|".join(r"\s+".join(map(re.escape, f.split())) for f in alternatives) + r")(?!\w)"
    found = re.search(pattern, text, re.IGNORECASE)
    if found is None:
        raise _usage_error(text, "no motion word found", forms, example)
    punctuation = " \t\n,.;:!?-"
    sub_start, sub_end = _strip_span(text, 0, found.start(), punctuation)
    words = list(re.finditer(r"\S+", text[sub_start:sub_end]))
    if len(words) > 1 and words[-1].group().lower() in _AUXILIARIES:
        sub_end = sub_start + words[-2].end()
    if sub_start == sub_end:
        raise _usage_error(text, "no subject before the motion", forms, example)
    ext = _strip_span(text, found.end(), len(text), punctuation)
    return PromptRoles(text=text, subject=(sub_start, sub_end), motion=found.span(), extensions=ext)


DEFAULT_SUBJECT = "a person"   # who does the motion in a user's clips, unless `learn --subject` says


@dataclass(frozen=True)
class ClipsPrompt:
    """The one prompt every training clip of a motion reads: "<subject> <motion form>" ("a person claps")."""

    roles: PromptRoles
    motion_form: str               # "claps", "does a handstand"
    triggers: list[str]            # the words that name the motion in any prompt

    @property
    def text(self) -> str:
        return self.roles.text


def clips_prompt(motion: str, trigger_words=(), subject: str = DEFAULT_SUBJECT) -> ClipsPrompt:
    """The clips' prompt of ``motion``: its first trigger phrase if given ("do a handstand"), else its name, in
    the third person after ``subject``. ``subject`` must be that prompt's whole subject, so it may not hold the
    motion's own words ("a clapping dog")."""
    verb = trigger_words[0] if trigger_words else motion
    form, triggers = inflections(verb)[1], [verb, motion, *trigger_words[1:]]
    bad = UsageError(f"--subject {subject!r} is not a subject for the clips' prompt",
                     hint='name who does the motion, without the motion\'s words, e.g. --subject "a dog"')
    if not subject.strip():
        raise bad
    try:
        roles = parse_roles(f"{subject} {form}", triggers)
    except UsageError:
        raise bad from None
    if roles.part("subject") != subject:
        raise bad
    return ClipsPrompt(roles=roles, motion_form=form, triggers=triggers)
