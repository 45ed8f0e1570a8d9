"""Local stand-ins for the Google Cloud services this project talks to (dev and tests only).

Nothing under `handlers/` may import from here: production code reaches emulators only through
the real SDKs pointed at them (e.g. `VERTEX_AI_EMULATOR_HOST`).
"""
