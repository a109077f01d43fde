"""The one exception base of muonlab: every error a user can cause is a :class:`MuonlabError`.

An error carries the offending ``field`` (a dotted config path such as
``"problem.r"``, a keyword name such as ``"lr"``, or None when the error is about a
whole file or store) and a one-line ``message`` that names that field in library
terms. Front ends never parse the text: the CLI reads ``error.field`` to name its own
option (``--steps`` for ``steps``), and prints ``str(error)`` as it is.

It subclasses ``ValueError`` so that code written against the older per-module
errors (``except ValueError``) keeps working.
"""

from __future__ import annotations

from typing import TypeVar

_E = TypeVar("_E", bound="MuonlabError")

__all__ = ["MuonlabError", "one_line"]


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


class MuonlabError(ValueError):
    """A user-facing error: one line of text, plus the field it is about.

    Attributes:
        message: the one-line message (also ``str(error)``).
        field: the dotted field path or keyword the error is about, or None.
    """

    def __init__(self, message: object, field: str | None = None) -> None:
        self.message = one_line(message)
        self.field = field
        #: What is wrong with ``field``, without the field's name (``message`` may add it).
        self.reason = self.message
        super().__init__(self.message)

    @classmethod
    def about(cls: type[_E], field: str, reason: object) -> _E:
        """The error ``"<field>: <reason>"`` about ``field``; ``reason`` stays available on its
        own, so a front end can name the field its own way (a config path, a CLI option)."""
        error = cls(f"{field}: {one_line(reason)}", field)
        error.reason = one_line(reason)
        return error
