"""Presence events on the /chat namespace (see presence/services.py)."""
