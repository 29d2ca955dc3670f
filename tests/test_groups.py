"""Groups form around an anchor: every member matches the anchor, chains do not merge."""

from dupe_scanner.groups import FileEntry, FilePair, group_duplicates, group_with_copies


def entry(path: str, width: int = 100, size: int = 1000, mtime: float = 0.0) -> FileEntry:
    return FileEntry(path, size, mtime, width, 100, "JPEG", "h-" + path)


def pair(a: str, b: str, score: float) -> FilePair:
    return FilePair(min(a, b), max(a, b), score)


def test_a_chain_does_not_join_its_far_ends():
    entries = [entry(p) for p in "ABCDE"]
    # A~B~C~D~E: each only like its neighbour.
    pairs = [pair("A", "B", 0.8), pair("B", "C", 0.8), pair("C", "D", 0.8), pair("D", "E", 0.8)]
    groups = group_duplicates(entries, pairs, 0.6)
    for group in groups:
        for member in group.paths:
            if member != group.anchor:
                assert any({p.first, p.second} == {member, group.anchor} for p in group.pairs)
    assert not any({"A", "C"} <= set(group.paths) for group in groups)


def test_members_match_the_anchor_and_are_akin_to_each_other():
    entries = [entry(p) for p in ["a", "b", "c", "d"]]
    # b and c are weakly alike (0.55): not a match, but not far apart either.
    pairs = [pair("a", "b", 0.95), pair("a", "c", 0.7), pair("b", "c", 0.55), pair("c", "d", 0.5)]
    groups = group_duplicates(entries, pairs, 0.6)
    assert [g.paths for g in groups] == [["a", "b", "c"]]
    assert groups[0].anchor == "a"
    assert [(p.first, p.second) for p in groups[0].pairs] == [("a", "b"), ("a", "c")]


def test_the_strongest_match_wins_when_two_matches_are_far_apart():
    entries = [entry(p) for p in ["anchor", "strong", "weak"]]
    pairs = [pair("anchor", "strong", 0.95), pair("anchor", "weak", 0.7)]
    groups = group_duplicates(entries, pairs, 0.6)
    assert [g.paths for g in groups] == [["anchor", "strong"]]


def test_edits_never_compared_with_each_other_join_the_original_when_the_backend_only_compares_candidates():
    entries = [entry(p) for p in ["original", "cropped", "captioned"]]
    # The crop and the captioned copy were never proposed as a pair: unknown, not far apart.
    pairs = [pair("original", "cropped", 0.7), pair("original", "captioned", 0.75)]
    (group,) = group_duplicates(entries, pairs, 0.6, unscored_are_far=False)
    assert group.paths == ["captioned", "cropped", "original"]
    assert group.anchor == "original"


def test_a_pair_compared_and_found_different_stays_apart_whatever_the_backend():
    entries = [entry(p) for p in ["anchor", "strong", "weak"]]
    # Both match the anchor through a shared watermark, but were compared: different pictures.
    pairs = [pair("anchor", "strong", 0.95), pair("anchor", "weak", 0.7), pair("strong", "weak", 0.2)]
    for unscored_are_far in (True, False):
        groups = group_duplicates(entries, pairs, 0.6, unscored_are_far=unscored_are_far)
        assert [g.paths for g in groups] == [["anchor", "strong"]]


def test_two_crops_far_apart_from_each_other_both_join_their_original():
    copies = ["copy1", "copy2", "copy3"]
    entries = [entry(p) for p in ["original", *copies, "crop-left", "crop-right"]]
    pairs = [pair("original", c, 0.95) for c in copies]
    pairs += [pair(a, b, 0.95) for i, a in enumerate(copies) for b in copies[i + 1 :]]
    pairs += [pair(crop, other, 0.8) for crop in ("crop-left", "crop-right") for other in ["original", *copies]]
    pairs.append(pair("crop-left", "crop-right", 0.45))  # each shows what the other lacks
    for unscored_are_far in (True, False):
        (group,) = group_duplicates(entries, pairs, 0.6, unscored_are_far=unscored_are_far)
        assert set(group.paths) == {"original", *copies, "crop-left", "crop-right"}


def test_a_mistaken_match_with_the_anchor_stays_out_when_the_rest_of_the_group_disagrees():
    copies = ["copy1", "copy2", "copy3"]
    entries = [entry(p) for p in ["original", *copies, "other-shot"]]
    pairs = [pair("original", c, 0.95) for c in copies] + [pair("original", "other-shot", 0.65)]
    pairs += [pair(a, b, 0.95) for i, a in enumerate(copies) for b in copies[i + 1 :]]
    pairs += [pair("other-shot", c, 0.3) for c in copies]  # compared with the copies: different
    (group,) = group_duplicates(entries, pairs, 0.6, unscored_are_far=False)
    assert set(group.paths) == {"original", *copies}


def test_a_mistaken_match_taken_before_the_members_that_disagree_with_it_leaves_the_group():
    # A greyscale copy matches everything at the floor, another shot of the scene too. Taken in
    # turn by name, the other shot comes after a few copies it was never compared with, and
    # before the copies it was compared with and found far from.
    copies = ["a-copy1", "a-copy2", "a-copy3", *(f"c-copy{n}" for n in range(4, 10))]
    entries = [entry(p) for p in ["greyscale", "b-other-shot", *copies]]
    pairs = [pair("greyscale", other, 0.61) for other in ["b-other-shot", *copies]]
    pairs += [pair(a, b, 0.95) for i, a in enumerate(copies) for b in copies[i + 1 :]]
    pairs += [pair("b-other-shot", c, 0.48) for c in copies if c.startswith("c-")]
    (group,) = group_duplicates(entries, pairs, 0.6, unscored_are_far=False)
    assert set(group.paths) == {"greyscale", *copies}


def test_a_member_far_apart_from_fewer_of_the_group_than_it_matches_stays():
    # A hue change matches the original and its copies; three crops, taken after it, match
    # them too but are far from the hue change: it matches 4 members and is far from 3.
    copies, crops = ["copy1", "copy2", "copy3"], ["crop1", "crop2", "crop3"]
    entries = [entry(p) for p in ["original", *copies, "hue", *crops]]
    pairs = [pair(a, b, 0.95) for i, a in enumerate(["original", *copies]) for b in copies[i:]]
    pairs += [pair("hue", other, 0.9) for other in ["original", *copies]]
    pairs += [pair(crop, other, 0.7) for crop in crops for other in ["original", *copies]]
    pairs += [pair(crop, "hue", 0.3) for crop in crops]
    (group,) = group_duplicates(entries, pairs, 0.6, unscored_are_far=False)
    assert set(group.paths) == {"original", *copies, "hue", *crops}


def test_a_picture_tied_more_strongly_to_its_own_copies_leaves_a_group_it_joined_through_an_overlay():
    ours = ["a", "a-copy1", "a-copy2", "a-copy3", "a-copy4"]
    theirs = ["b", "b-copy1", "b-copy2"]
    entries = [entry(p) for p in ours + theirs]
    pairs = [pair(x, y, 0.95) for group in (ours, theirs) for i, x in enumerate(group) for y in group[i + 1 :]]
    pairs.append(pair("a", "b", 0.61))  # the same watermark on two different pictures
    groups = group_duplicates(entries, pairs, 0.6, unscored_are_far=False)
    assert sorted(g.paths for g in groups) == [sorted(ours), sorted(theirs)]


def test_a_picture_leaves_look_alikes_it_matches_at_the_floor_for_its_own_copy():
    # A hub of look-alikes (nebulae on a black sky) that only just verify with each other, and
    # one of them has a real copy, which looks like none of the rest.
    look_alikes = ["hub", "nebula1", "nebula2", "nebula3", "nebula4", "nebula5"]
    entries = [entry(p) for p in [*look_alikes, "nebula1-copy"]]
    pairs = [pair("hub", other, 0.61) for other in look_alikes[1:]] + [pair("nebula1", "nebula2", 0.61)]
    pairs.append(pair("nebula1", "nebula1-copy", 0.99))
    pairs += [pair("nebula1-copy", other, 0.2) for other in ("hub", "nebula2")]  # compared: different pictures
    groups = group_duplicates(entries, pairs, 0.6, unscored_are_far=False)
    assert ["nebula1", "nebula1-copy"] in [g.paths for g in groups]


def test_biggest_group_first_then_by_path_and_deterministic():
    entries = [entry(p) for p in ["x1", "x2", "y1", "y2", "y3"]]
    pairs = [pair("x1", "x2", 0.9), pair("y1", "y2", 0.9), pair("y1", "y3", 0.9), pair("y2", "y3", 0.9)]
    first = group_duplicates(entries, pairs, 0.6)
    second = group_duplicates(list(reversed(entries)), list(reversed(pairs)), 0.6)
    assert [g.paths for g in first] == [["y1", "y2", "y3"], ["x1", "x2"]]
    assert first == second


def test_suggested_keep_prefers_pixels_then_size_then_age():
    entries = [entry("small", width=50), entry("big-new", width=200, mtime=5), entry("big-old", width=200, mtime=1)]
    pairs = [pair("small", "big-new", 0.9), pair("small", "big-old", 0.9), pair("big-new", "big-old", 0.9)]
    (group,) = group_duplicates(entries, pairs, 0.6)
    assert group.suggested_keep.path == "big-old"


def test_pairs_naming_unknown_files_are_ignored():
    groups = group_duplicates([entry("a")], [pair("a", "ghost", 1.0)], 0.6)
    assert groups == []


def copy(path: str, content: str) -> FileEntry:
    return FileEntry(path, 1000, 0.0, 100, 100, "JPEG", content)


def test_byte_identical_files_join_their_picture_s_group():
    entries = [copy("a", "A"), copy("a-copy", "A"), copy("a-copy2", "A"), copy("b", "B"), copy("c", "C")]
    groups = group_with_copies(entries, [("A", "B", 0.8)], 0.6)
    assert [g.paths for g in groups] == [["a", "a-copy", "a-copy2", "b"]]
    assert ("a", "a-copy", 1.0) in [(p.first, p.second, p.score) for p in groups[0].pairs]


def test_byte_identical_files_alone_are_a_group_and_cost_linear_pairs():
    entries = [copy(f"x{n:04d}", "X") for n in range(1000)] + [copy("y", "Y")]
    (group,) = group_with_copies(entries, [], 0.6)
    assert len(group.members) == 1000
    assert len(group.pairs) == 999


def test_pictures_declared_not_duplicates_never_share_a_group_whatever_the_threshold():
    entries = [entry("a"), entry("b"), entry("c")]
    pairs = [pair("a", "b", 1.0), pair("a", "c", 0.95), pair("b", "c", 0.95)]
    forbidden = frozenset({frozenset(("a", "b"))})
    for threshold in (0.1, 0.6, 0.9, 1.0):
        for group in group_duplicates(entries, pairs, threshold, forbidden=forbidden):
            assert not {"a", "b"} <= set(group.paths), threshold
    (group,) = group_duplicates(entries, pairs, 0.6, forbidden=forbidden)
    assert len(group.paths) == 2 and "c" in group.paths


def test_contents_declared_not_duplicates_keep_their_copies_apart_too():
    entries = [copy("a", "A"), copy("a-copy", "A"), copy("b", "B"), copy("b-copy", "B")]
    groups = group_with_copies(entries, [("A", "B", 0.99)], 0.6, forbidden_contents=frozenset({frozenset(("A", "B"))}))
    assert sorted(g.paths for g in groups) == [["a", "a-copy"], ["b", "b-copy"]]


def test_a_crowd_of_twenty_thousand_near_identical_pictures_is_one_group():
    # As the embedded backend proposes a crowd: each picture paired with the three oldest
    # (the first few with every older one), every pair verified as a duplicate. Grouping
    # costs the pairs, not the crowd's size squared (each joiner checked against every member).
    paths = [f"crowd/{number:05d}.png" for number in range(20_000)]
    pairs = [FilePair(paths[older], paths[newer], 0.97) for newer in range(1, len(paths)) for older in range(min(newer, 3 if newer > 64 else newer))]
    groups = group_duplicates([entry(path) for path in paths], pairs, threshold=0.6, unscored_are_far=False)
    assert len(groups) == 1
    assert groups[0].paths == paths
    assert groups[0].anchor == paths[0]
