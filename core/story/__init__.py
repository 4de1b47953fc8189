"""Branching video stories (Qt-free): branch points, variants, clips, validation, playthrough, export."""
