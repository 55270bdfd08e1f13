"""sglang-mimo tooling: one small package behind one CLI (``sglang-mimo``).

Applying patches is never done here: every command that applies, checks or
reverses the series calls ``scripts/apply_patches.sh``.
"""
