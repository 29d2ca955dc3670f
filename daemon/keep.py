"""Which file of a group to keep, and why: the one place the keep rules live.

In order: a file you decided to keep (``decide keep``), then one in a preferred folder,
then one in a preferred format, then the most pixels, the largest file, the oldest, and
the smallest path so the choice is deterministic. The reason names the first rule that
told the chosen file from the runner-up, in words.

Files in a preferred folder, files you decided to keep, and RAW + JPEG companions (one
shot written twice by the camera) are never suggested for removal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from dupe_scanner.decisions import Decision, Decisions
from dupe_scanner.rawfiles import RAW_SUFFIXES
from dupe_scanner.settings import KeepSettings
from dupe_scanner.store.schema import KEEP

if TYPE_CHECKING:  # groups imports this module; entries are only read here
    from dupe_scanner.groups import FileEntry

JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})


@dataclass(frozen=True)
class KeepChoice:
    path: str
    reason: str  # in words, e.g. "most pixels: 4000x3000 against 2000x1500"


@dataclass(frozen=True)
class GroupReview:
    """What the keep rules and your decisions make of one group."""

    keep: KeepChoice
    protected: frozenset[str]  # paths never suggested for removal, the keep among them
    companions: tuple[tuple[str, str], ...]  # (RAW, JPEG) paths of one shot
    decisions: tuple[Decision, ...]  # decisions naming a member's content
    decided: bool  # a keep decision names a member's content: `apply` may act on the group

    def removable(self, members: Sequence[FileEntry]) -> list[FileEntry]:
        return [member for member in members if member.path not in self.protected]


@dataclass(frozen=True)
class _Rule:
    key: Callable[[FileEntry], object]  # smaller is better
    reason: Callable[[FileEntry, FileEntry], str]  # the chosen one against the runner-up


def review_group(members: Sequence[FileEntry], rules: KeepSettings, decisions: Decisions = Decisions()) -> GroupReview:
    kept = decisions.kept()
    decided_members = [member for member in members if member.content_hash in kept]
    companions = find_companions(members)
    keep = _decided_keep(decided_members, kept, rules, decisions) if decided_members else choose_keep(members, rules)
    protected = {keep.path, *(m.path for m in members if in_preferred_folder(m, rules))}
    protected |= {path for pair in companions for path in pair}
    protected |= {_best_of_content(decided_members, digest, kept[digest], rules) for digest in {m.content_hash for m in decided_members}}
    return GroupReview(
        keep=keep,
        protected=frozenset(protected),
        companions=companions,
        decisions=tuple(decisions.touching(member.content_hash for member in members)),
        decided=bool(decided_members),
    )


def choose_keep(members: Sequence[FileEntry], rules: KeepSettings) -> KeepChoice:
    """The file the rules keep, and the first rule that told it from the runner-up."""
    ranked = sorted(members, key=lambda member: _rank(member, rules))
    chosen = ranked[0]
    if len(ranked) == 1:
        return KeepChoice(chosen.path, "the only file")
    runner_up = ranked[1]
    for rule in _rules(rules):
        if rule.key(chosen) != rule.key(runner_up):
            return KeepChoice(chosen.path, rule.reason(chosen, runner_up))
    return KeepChoice(chosen.path, "first by path: the rules see no difference (byte-identical copies?)")


def _decided_keep(decided: list[FileEntry], kept: dict[str, str], rules: KeepSettings, decisions: Decisions) -> KeepChoice:
    if len({member.content_hash for member in decided}) > 1:
        choice = choose_keep(decided, rules)  # two kept pictures in one group: the rules pick between them
        return KeepChoice(choice.path, f"you decided to keep it (and another of this group); then {choice.reason}")
    digest = decided[0].content_hash
    number = next(d.id for d in reversed(decisions.all) if d.kind == KEEP and digest in d.hashes)
    return KeepChoice(_best_of_content(decided, digest, kept[digest], rules), f"you decided to keep it (decision {number})")


def _best_of_content(members: list[FileEntry], digest: str, decided_path: str, rules: KeepSettings) -> str:
    """Among byte-identical files of a kept content, the one decided on if still there."""
    same = [member for member in members if member.content_hash == digest]
    if any(member.path == decided_path for member in same):
        return decided_path
    return choose_keep(same, rules).path


def _rank(member: FileEntry, rules: KeepSettings) -> tuple:
    return (*[rule.key(member) for rule in _rules(rules)], member.path)


@lru_cache(maxsize=8)  # one set of rules per scan, asked for by every member of every group
def _rules(rules: KeepSettings) -> tuple[_Rule, ...]:
    return (
        _Rule(lambda m: not in_preferred_folder(m, rules), lambda c, _r: f"in a preferred folder ({_preferred_folder(c, rules)})"),
        _Rule(lambda m: _format_rank(m, rules), lambda c, r: f"preferred format: {_format_name(c)} against {_format_name(r)}"),
        _Rule(lambda m: -m.pixels, lambda c, r: f"most pixels: {c.width}x{c.height} against {r.width}x{r.height}"),
        _Rule(lambda m: -m.size, lambda c, r: f"largest file: {c.size} bytes against {r.size}"),
        _Rule(lambda m: m.mtime, lambda c, r: f"oldest: modified {_day(c.mtime)} against {_day(r.mtime)}"),
    )


def in_preferred_folder(member: FileEntry, rules: KeepSettings) -> bool:
    return _preferred_folder(member, rules) is not None


def _preferred_folder(member: FileEntry, rules: KeepSettings) -> str | None:
    if not rules.preferred_folders:
        return None
    path = PurePosixPath(member.path)
    return next((str(folder) for folder in rules.preferred_folders if PurePosixPath(folder) in path.parents), None)


def _format_name(member: FileEntry) -> str:
    return _format_name_of(_suffix(member.path), member.format)


def _format_rank(member: FileEntry, rules: KeepSettings) -> int:
    return _format_rank_of(_suffix(member.path), member.format, rules.preferred_formats)


# Both are asked for every member of every group (40,000 at a million files), of a handful
# of (suffix, format) kinds.
@lru_cache(maxsize=256)
def _format_name_of(suffix: str, format_name: str) -> str:
    return suffix[1:].upper() if suffix in RAW_SUFFIXES else format_name.upper()


@lru_cache(maxsize=256)
def _format_rank_of(suffix: str, format_name: str, preferred: tuple[str, ...]) -> int:
    names = (_format_name_of(suffix, format_name), format_name.upper())
    return min((index for index, name in enumerate(preferred) if name in names), default=len(preferred))


def _suffix(path: str) -> str:
    """``PurePosixPath(path).suffix.lower()``, without building a path object for every member of every group."""
    name = path.rpartition("/")[2]
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def _day(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def find_companions(members: Sequence[FileEntry]) -> tuple[tuple[str, str], ...]:
    """RAW and JPEG files of one shot: same folder, same name but for the suffix.

    The capture time is not compared (RAW files are read for their preview's pixels
    alone); the camera's naming is what ties the two.
    """
    by_shot: dict[tuple[str, str], dict[str, list[str]]] = {}
    for member in members:
        suffix = _suffix(member.path)
        kind = "raw" if suffix in RAW_SUFFIXES else "jpeg" if suffix in JPEG_SUFFIXES else None
        if kind:
            folder, _, name = member.path.rpartition("/")  # the indexer's paths: absolute and normalised
            shot = name[: len(name) - len(suffix)].lower()
            by_shot.setdefault((folder, shot), {}).setdefault(kind, []).append(member.path)
    return tuple(
        sorted((raw, jpeg) for kinds in by_shot.values() for raw in kinds.get("raw", []) for jpeg in kinds.get("jpeg", []))
    )
