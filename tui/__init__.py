"""Strongroom's terminal UI: a Textual app that talks to the vault only through `tui.backend`.

Importing this package is cheap (no torch, no vault internals); screens load lazily.
"""
