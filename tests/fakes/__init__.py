"""Fakes of remote services (HTTP servers and provider APIs) that tests talk to over 127.0.0.1."""
