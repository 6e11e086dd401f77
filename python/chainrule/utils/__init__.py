"""Utilities: data loading."""
from chainrule.utils import data

__all__ = ["data"]
