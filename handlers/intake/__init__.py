"""Intake: what an event is, what a name means, which objects form one upload (runs in the function)."""
