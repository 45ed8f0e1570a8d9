"""Late arrivals: files that reach an upload after it was settled (runs in the function)."""
