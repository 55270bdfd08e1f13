"""sglang-mimo tooling: one small package behind one CLI (``sglang-mimo``).

Applying patches is done in one place: ``sglang_mimo.apply`` (standard library only),
run by ``scripts/apply_patches.sh``, which every command that applies, checks or reverses
the series calls.
"""
