"""models.yamlpos.top_level_keys: what kind of file this is, from its top-level keys as the
parser meets them, without building the document (the CLI asks it of every file named to
`closeloop validate`, which then parses a playbook once, not twice)."""

from __future__ import annotations

import io

import pytest

from models.yamlpos import YamlSyntaxError, top_level_keys


class CountingStream(io.BytesIO):
    """A file that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


def test_keys_in_order_with_values_of_every_shape_passed_over() -> None:
    text = ("id: x\nparams: {a: [1, {b: 2}], c: &c {d: e}}\nunits:\n  - id: u\n"
            "    children: [{id: v}]\nother: *c\n\"quoted\": 1\n? [complex, key]\n: v\n"
            "last: ~\n")
    assert list(top_level_keys(text, "f.yaml")) == ["id", "params", "units", "other",
                                                   "quoted", "last"]


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n", "# only a comment\n"])
def test_a_document_that_is_not_a_mapping_has_no_keys(text: str) -> None:
    assert list(top_level_keys(text, "f.yaml")) == []


def test_a_large_file_is_read_only_as_far_as_the_caller_goes() -> None:
    # A 5 MB playbook whose `steps:` comes on its third line: the caller that stops there
    # has read one chunk, not the file.
    body = b"id: big\ntitle: \xe5\xa4\xa7\nsteps:\n" + b"  - {id: s, title: t}\n" * 250_000
    stream = CountingStream(body)
    for key in top_level_keys(stream, "big.yaml"):
        if key == "steps":
            break
    assert stream.taken <= 64 * 1024 < len(body)


def test_aliases_are_never_expanded() -> None:
    # Aliases of aliases that would expand to 10^9 values: events only, so nothing grows.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert list(top_level_keys("\n".join(lines) + "\nunits: []\n", "bomb.yaml"))[-1] == "units"


def test_broken_yaml_is_a_syntax_error_at_its_line_once_reached() -> None:
    text = "id: x\nunits: []\nsteps: [a, b\nmore: 1\n"
    keys = top_level_keys(text, "broken.yaml")
    assert next(keys) == "id"
    with pytest.raises(YamlSyntaxError) as caught:
        list(keys)
    assert caught.value.filename == "broken.yaml" and caught.value.line == 4
