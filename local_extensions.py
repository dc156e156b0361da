"""Jinja filters for this template (cookiecutter loads them through `_extensions`)."""

from cookiecutter.utils import simple_filter


@simple_filter
def quoted(value) -> str:
    """A double-quoted string literal that is valid TOML, YAML and Python for any answer.

    Printable characters stay as they are (unlike `tojson`, which writes emoji as surrogate pairs
    that TOML rejects); quotes, backslashes and every non-printable character are escaped with the
    `\\uXXXX` / `\\UXXXXXXXX` forms that all three languages read the same way.
    """
    out = []
    for ch in str(value):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'
