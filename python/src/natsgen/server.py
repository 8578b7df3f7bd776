"""Serving services from Python: the base of generated service classes, and the `Host`."""

from __future__ import annotations

from typing import ClassVar

from .descriptors import ServiceDescriptor


class Service:
    """Base of the generated service classes: subclass one and implement its methods."""

    DESCRIPTOR: ClassVar[ServiceDescriptor]
