"""Jinja filters for this template (cookiecutter loads them through `_extensions`)."""

import json

from cookiecutter.utils import simple_filter


@simple_filter
def quoted(value) -> str:
    """A double-quoted string literal that is valid TOML, YAML and Python for any answer.

    Unlike `tojson`, non-ASCII characters stay as they are: `tojson` escapes characters outside
    the Basic Multilingual Plane (emoji) as surrogate pairs, which TOML rejects and Python
    decodes into unencodable lone surrogates.
    """
    return json.dumps(str(value), ensure_ascii=False)
