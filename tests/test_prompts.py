"""Prompt roles: verb inflections and the subject / motion / extensions split."""

import pytest

from synmotion_cli.errors import ExitCode, UsageError
from synmotion_cli.prompts import compose, inflections, motion_words, parse_roles


@pytest.mark.parametrize(
    "verb, forms",
    [
        ("clap", ["clap", "claps", "clapping", "clapped"]),
        ("wave", ["wave", "waves", "waving", "waved"]),
        ("run", ["run", "runs", "running", "ran"]),
        ("punch", ["punch", "punches", "punching", "punched"]),
        ("spin", ["spin", "spins", "spinning", "spun"]),
        ("bow", ["bow", "bows", "bowing", "bowed"]),
        ("handstand", ["handstand", "handstands", "handstanding", "handstanded"]),
        ("cry", ["cry", "cries", "crying", "cried"]),
        ("play", ["play", "plays", "playing", "played"]),
        ("box", ["box", "boxes", "boxing", "boxed"]),
        ("tie", ["tie", "ties", "tying", "tied"]),
        ("open", ["open", "opens", "opening", "opened"]),
        ("sit down", ["sit down", "sits down", "sitting down", "sat down"]),
        ("do a handstand", ["do a handstand", "does a handstand", "doing a handstand", "did a handstand"]),
        ("Clap", ["clap", "claps", "clapping", "clapped"]),
    ],
)
def test_inflections(verb, forms):
    assert inflections(verb) == forms


def test_motion_words_merge_triggers_without_duplicates():
    assert motion_words(["clap", "applaud"]) == [
        "clap", "claps", "clapping", "clapped", "applaud", "applauds", "applauding", "applauded",
    ]


def test_parse_simple_prompt():
    roles = parse_roles("a panda claps", ["clap"])
    assert roles.text == "a panda claps"
    assert (roles.subject_text, roles.motion_text, roles.extensions_text) == ("a panda", "claps", "")
    assert roles.subject == (0, 7) and roles.motion == (8, 13) and roles.extensions == (13, 13)


def test_parse_auxiliary_and_extensions():
    roles = parse_roles("A red fox is clapping at night, cut paper style", ["clap"])
    assert roles.subject_text == "A red fox"       # "is" belongs to no role
    assert roles.motion_text == "clapping"
    assert roles.extensions_text == "at night, cut paper style"


def test_parse_is_case_insensitive_whole_word_first_match():
    roles = parse_roles("A Clapperboard robot CLAPS and claps again", ["clap"])
    assert roles.motion_text == "CLAPS"             # not inside "Clapperboard", and the first match
    assert roles.subject_text == "A Clapperboard robot"
    assert roles.extensions_text == "and claps again"


def test_parse_phrase_trigger_prefers_longest():
    roles = parse_roles("a bear sits down slowly", ["sit", "sit down"])
    assert roles.motion_text == "sits down" and roles.extensions_text == "slowly"
    roles = parse_roles("a crocodile does a handstand", ["do a handstand"])
    assert (roles.subject_text, roles.motion_text) == ("a crocodile", "does a handstand")


def test_style_and_background_are_appended_in_the_papers_form():
    composed = compose("a zebra walks", style="pixel art", background="on grass")
    assert composed == "a zebra walks on grass, pixel art style"
    assert compose("a zebra walks.", style="cut paper style") == "a zebra walks, cut paper style"
    roles = parse_roles("a panda claps", ["clap"], style="cut paper", background="at night")
    assert roles.text == "a panda claps at night, cut paper style"
    assert roles.extensions_text == "at night, cut paper style"
    assert roles.subject_text == "a panda" and roles.motion_text == "claps"


def test_no_motion_is_a_usage_error_with_the_expected_form():
    with pytest.raises(UsageError) as caught:
        parse_roles("a panda waves", ["clap"])
    message = caught.value.message
    assert '"a panda waves"' in message
    assert '"<subject> <motion>[, style/background]"' in message
    assert '"a panda claps, cut paper style"' in message
    assert "clap, claps, clapping, clapped" in message
    assert caught.value.hint and caught.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize("prompt", ["claps", "  Claps at night", ", claps"])
def test_empty_subject_is_a_usage_error(prompt):
    with pytest.raises(UsageError, match="no subject before the motion.*expected"):
        parse_roles(prompt, ["clap"])


def test_example_uses_the_trigger_phrase():
    with pytest.raises(UsageError, match='"a panda sits down, cut paper style"'):
        parse_roles("a bear rests", ["sit down"])
