"""The `quoted` filter: any answer becomes one string literal that TOML, YAML and Python read back exactly."""

import ast
import tomllib

import yaml
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import Environment

import local_extensions

ENV = Environment(extensions=[local_extensions.quoted])


def quoted(value: str) -> str:
    return ENV.from_string("{{ value|quoted }}").render(value=value)


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"])))
def test_any_text_round_trips_in_toml_yaml_and_python(text):
    literal = quoted(text)
    assert "\n" not in literal
    assert tomllib.loads(f"k = {literal}")["k"] == text
    assert yaml.safe_load(f"k: {literal}")["k"] == text
    assert ast.literal_eval(literal) == text


def test_printable_text_stays_readable():
    assert quoted("Churn Prøjéct 🚀") == '"Churn Prøjéct 🚀"'
    assert quoted('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
