"""Widgets built for Strongroom: the audit log view, half-block images, ledger bars, curves."""
