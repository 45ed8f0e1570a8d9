"""Validation: the Validator seam, its report, the static scans and the sandbox."""
