"""sglang-mimo tooling: one small package behind two command lines, the users'
``sglang-mimo`` (``cli``) and the maintainers' ``scripts/dev`` (``dev``).

Applying patches is done in one place: ``sglang_mimo.engine`` (standard library only),
which every command that applies, checks or reverses the series calls in-process, and
which ``scripts/apply_patches.sh`` runs through its command line, ``sglang_mimo.apply``.
The modules the script imports (``apply``, ``engine``, ``patchtool``, ``diffs``,
``gitutil``, ``wheels``, ``series``, ``paths``, ``errors``, ``tables``) need the standard
library only.
"""
