"""Every command reads coordinates that start with a minus the same way: `--start -3,-2` == `--start=-3,-2`."""

from __future__ import annotations

import pytest

from hosig.cli.main import build_parser

# (command words, the coordinate flag, what else the command requires)
COMMANDS = [
    (["navigate", "room.glb"], "--start", ["--target", "cup"]),
    (["navigate", "room.glb"], "--point", ["--start", "0,0"]),
    (["grasp", "room.glb"], "--start", ["--target", "cup"]),
    (["grasp", "room.glb"], "--stand", ["--target", "cup"]),
    (["generate", "room.glb"], "--start", ["--target", "cup"]),
    (["generate", "room.glb"], "--place", ["--start", "0,0", "--target", "cup", "--action", "pick-place"]),
    (["motion", "synth"], "--place", ["--path", "p.json", "--out", "c.npz"]),
]


@pytest.mark.parametrize("words,flag,rest", COMMANDS, ids=[f"{c[0][0]} {c[1]}" for c in COMMANDS])
@pytest.mark.parametrize("value", ["-3,-2", "-1.5,2,-0.7", "-.5,1e-3,0"])
def test_negative_coordinates_parse_as_values(words: list[str], flag: str, rest: list[str], value: str) -> None:
    parser = build_parser()
    attr = flag.lstrip("-")
    spaced = parser.parse_args([*words, *rest, flag, value])
    joined = parser.parse_args([*words, *rest, f"{flag}={value}"])
    assert getattr(spaced, attr) == getattr(joined, attr) == value


def test_a_real_option_after_a_flag_is_still_an_option() -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["navigate", "room.glb", "--target", "cup", "--start", "--json"])
