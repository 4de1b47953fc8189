"""Composition root: settings, start-up, command line and wiring of core services into the UI."""
