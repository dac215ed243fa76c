"""Catalog YAML loading: YAML 1.2 core schema (as Backstage), plain JSON data only."""

from __future__ import annotations

import pytest

from catalog.errors import InputError
from catalog.yaml_loader import load_documents


def load(text: str) -> list:
    return load_documents(text, source="url:x", max_bytes=10_000)


def test_documents_of_a_stream_and_a_single_list_document_stay_apart() -> None:
    assert load("a: 1\n---\nb: 2\n") == [{"a": 1}, {"b": 2}]
    # One document that is a list is one (invalid) entity, not two documents.
    assert load("- a: 1\n- b: 2\n") == [[{"a": 1}, {"b": 2}]]
    assert load("--- \n- 1\n") == [[1]]
    assert load("# only a comment\n") == []
    assert load("---\n...\n") == []
    assert load("a: |\n  text") == [{"a": "text\n"}]


def test_yaml_1_2_core_schema_as_in_backstage() -> None:
    [doc] = load("a: yes\nb: on\nc: true\nd: 2024-01-01\ne: 017\nf: 0o17\ng: ~\n")
    # yes/on are strings and dates stay strings (YAML 1.1 made them booleans and dates).
    assert doc == {
        "a": "yes",
        "b": "on",
        "c": True,
        "d": "2024-01-01",
        "e": 17,
        "f": 15,
        "g": None,
    }


def test_duplicate_keys_are_refused_naming_the_key() -> None:
    with pytest.raises(InputError, match="duplicate mapping key: 'owner'") as error:
        load("spec:\n  owner: a\n  owner: b\n")
    assert error.value.details[0].path == "url:x"


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object/apply:os.system ['true']\n",
        "a: !!python/name:os.system\n",
        "a: !custom x\n",
        "a: !!binary aGk=\n",
        "a: !!set {x, y}\n",
    ],
)
def test_tags_beyond_plain_values_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="is not allowed in catalog files"):
        load(text)


def test_exclamation_marks_in_values_and_core_tags_are_fine() -> None:
    assert load("a: Hello!\nb: 'x !y'\nc: !!str 12\nd: [!!int '3']\n") == [
        {"a": "Hello!", "b": "x !y", "c": "12", "d": [3]}
    ]


def test_values_json_cannot_hold_are_refused_naming_the_document() -> None:
    with pytest.raises(InputError, match=r"documents\[1\] is not JSON-compatible") as error:
        load("a: 1\n---\n? [x, y]\n: complex key\n")
    assert error.value.details[0].path == "documents[1]"


def test_aliases_are_refused_but_an_unused_anchor_is_harmless() -> None:
    with pytest.raises(InputError, match="aliases"):
        load("a: &x {k: 1}\nb:\n  <<: *x\n")
    assert load("a: &x 1\nb: 2\n") == [{"a": 1, "b": 2}]
