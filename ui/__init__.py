"""PySide6 widgets and item models. Talks to core only through services and plain data objects."""
