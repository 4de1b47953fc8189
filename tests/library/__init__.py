"""The library: importing the user's own files."""
