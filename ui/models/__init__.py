"""Qt item models: thin adapters over Qt-free core state."""
