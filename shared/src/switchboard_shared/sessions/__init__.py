"""Browser voice sessions: how one ends (and announces it), and the media edge's join
tokens."""
