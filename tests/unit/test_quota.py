"""Per-tenant storage quotas in process, on a real Redis: refusals, giving back, expiry."""

from __future__ import annotations

import pytest

from shared.errors import StorageQuotaExceeded
from shared.quota import StorageQuota, Stored
from testbed.processes import RedisServer, wait_for

DB = 11


def _quota(redis_server: RedisServer, retention: int = 600) -> StorageQuota:
    client = redis_server.client(DB)
    client.flushdb()
    limits = {Stored.RECORDS: 1000, Stored.AUDIO: 0}
    return StorageQuota(client, retention_seconds=retention, limits=limits)


def test_a_tenant_is_refused_what_would_pass_its_quota(redis_server: RedisServer) -> None:
    quota = _quota(redis_server)
    kept = [quota.reserve("t1", Stored.RECORDS, 400) for _ in range(2)]
    with pytest.raises(StorageQuotaExceeded) as refused:
        quota.reserve("t1", Stored.RECORDS, 201)
    assert refused.value.code == "storage-quota-exceeded" and refused.value.status == 429
    assert "800 bytes of records" in refused.value.message
    # Space comes back when the oldest counted bytes expire: about one retention from now.
    assert refused.value.retry_after is not None and 590 <= refused.value.retry_after <= 612
    assert quota.reserve("t1", Stored.RECORDS, 200) is not None  # exactly the quota
    assert quota.reserve("t2", Stored.RECORDS, 1000) is not None  # another tenant's own
    # What a failed submission reserved is given back.
    quota.release(kept[0])
    assert quota.reserve("t1", Stored.RECORDS, 400) is not None
    # A kind whose quota is 0 is not counted.
    assert quota.reserve("t1", Stored.AUDIO, 10**12) is None


def test_usage_falls_as_what_it_counts_expires(redis_server: RedisServer) -> None:
    quota = _quota(redis_server, retention=2)
    quota.reserve("t1", Stored.RECORDS, 1000)
    with pytest.raises(StorageQuotaExceeded):
        quota.reserve("t1", Stored.RECORDS, 1)

    def room() -> bool:
        try:
            return quota.reserve("t1", Stored.RECORDS, 1000) is not None
        except StorageQuotaExceeded:
            return False

    # Within the retention and one bucket (1 s here) of the first reservation.
    wait_for(room, 10, "the counted bytes to expire", interval=0.2)


def test_giving_back_after_the_bucket_expired_leaves_no_debt(redis_server: RedisServer) -> None:
    quota = _quota(redis_server, retention=1)
    reservation = quota.reserve("t1", Stored.RECORDS, 500)
    assert reservation is not None
    client = redis_server.client(DB)
    wait_for(lambda: not client.exists(reservation.key), 10, "the bucket to expire")
    quota.release(reservation)
    assert not client.exists(reservation.key)
