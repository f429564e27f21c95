"""Typed errors: every failure a user can cause is an ``InputError`` with a clear message.

Pages show ``str(err)`` with ``st.error``; the CLI prints it as JSON. Any other exception is a bug.
"""
from __future__ import annotations


class MedAIError(Exception):
    """Base class of every error the core raises on purpose."""


class InputError(MedAIError):
    """The user's input cannot be used; the message says why in plain words."""


class UnsupportedFormat(InputError):
    """The file is not a format we read (checked by content, not by extension)."""


class CorruptFile(InputError):
    """The file claims a known format but is truncated or damaged."""


class NoPixelData(InputError):
    """A DICOM file without an image in it (e.g. a structured report)."""


class UndecodablePixelData(InputError):
    """The pixel data uses an encoding we cannot decode."""


class TooLarge(InputError):
    """The input exceeds a resource limit (bytes, pixels, frames)."""


class EmptyInput(InputError):
    """The input is empty."""


class BurnedInText(InputError):
    """An image whose pixels may show patient identifiers (burned-in annotation), which header
    de-identification cannot remove (DICOM PS3.15 E.3.1, Clean Pixel Data Option)."""


class ConfigError(MedAIError):
    """A setting read from the environment has an unusable value; the message names the variable."""


class Cancelled(MedAIError):
    """The user stopped a running computation (not a problem with the input)."""


class ModelError(MedAIError):
    """A model cannot be built or loaded (missing or mismatched weights)."""


class UnknownName(MedAIError, KeyError):
    """A registry lookup failed; the message suggests close names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
