"""Generation jobs: the service the UI and CLI use, and the runner that drives jobs to completion."""
