"""The retry policy the indexer and the service's queue worker share."""

from dupe_scanner.retry import MAX_RETRY_DELAY, RetryPolicy
from dupe_scanner.settings import IndexSettings


def test_built_from_the_index_settings():
    assert RetryPolicy.of(IndexSettings(max_attempts=3, retry_base_seconds=60)) == RetryPolicy(3, 60.0)


def test_the_delay_doubles_after_each_failure_up_to_the_cap():
    policy = RetryPolicy(max_attempts=20, base_seconds=30)
    assert [policy.delay(attempts) for attempts in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert policy.delay(15) == MAX_RETRY_DELAY


def test_gives_up_at_the_last_attempt():
    policy = RetryPolicy(max_attempts=3, base_seconds=1)
    assert not policy.gives_up(1) and not policy.gives_up(2)
    assert policy.gives_up(3) and policy.gives_up(4)
