"""The embedded analysis: fingerprints of each image, candidate pairs, and their verification.

Three version markers say when stored work is out of date. This is the one place that says
what each means and when to bump it; CHANGELOG.md records each bump.

``ANALYSER`` (``features.py``), e.g. ``"embedded-dhv-5"``: the analyser that computed a
fingerprint, stored beside it in ``features.analyser`` (and copied into ``feature_hashes``).
Bump it when the same image would now get different features: any change to what
``features.py`` or ``fingerprints.py`` compute (thumbnail size or contrast, hashes,
keypoints, colour, how the image is decoded or turned upright). A fingerprint of another
analyser counts as missing: every content analysed by an older one is queued to be
analysed again as soon as a command or the service opens the state, the keypoint index is
rebuilt (``keypoint_store`` names the analyser), and the next scan is a full one (the
analyser is part of the embedded backend's ``comparison``).

``MAGIC`` (``features.py``), e.g. ``b"DSF3"``: the byte layout of the ``features.data``
blob, its first four bytes. Bump it when ``encode`` writes something ``decode`` of the old
layout cannot read (a field added, removed or reordered), and always bump ``ANALYSER`` with
it: rows are chosen by analyser, and a row of the current analyser with another layout is
only skipped as damaged, never analysed again. The blob's prefix (magic and the eight
hashes, ``PREFIX_BYTES``) is also copied into ``feature_hashes`` by a trigger that names its
length: a new layout of the prefix needs a new state revision (``migrations/versions/``) too.

``VERIFIER`` (``verify/__init__.py``), e.g. ``"verify-8"``: the rules that score a candidate
pair (anything in ``verify/``, or ``pairing.py``'s choice of which relations to try and
which pairs to settle without one). Bump it whenever the same pair of fingerprints could
get another score or verdict: a new check, a moved limit, a changed weight. Stored pairs
are then out of date: the next scan compares every pair again (the verifier is part of the
embedded backend's ``comparison``, which the state records after each scan). Features are
kept; nothing is analysed again. A bump that only rejects pairs the verifier before it
verified (a new check that only rejects) names the verifiers it tightens in
``verify.TIGHTENS``: the next scan then scores again only the stored pairs they verified,
not every candidate of every picture. A change that leaves every score identical (a refactor;
check with real pairs, to the bit) needs no bump.
"""
