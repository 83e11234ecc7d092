"""The decoded-image cache: least recently used out, copies out, one block per size."""

import numpy as np
import pytest

from msd_core.data.image_cache import ImageCache


def picture(value, size=4):
    return np.full((size, size, 3), value, dtype=np.uint8)


def test_hits_return_copies_and_the_least_recently_used_goes_first():
    cache, decoded = ImageCache(capacity=2), []

    def get(key):
        return cache.get(key, 4, lambda: decoded.append(key) or picture(key))

    a = get(1)
    get(2)
    a[:] = 99  # changing what a read returned changes nothing cached
    assert get(1)[0, 0, 0] == 1 and decoded == [1, 2]
    get(3)  # evicts 2, the least recently used
    assert get(1)[0, 0, 0] == 1 and decoded == [1, 2, 3]
    assert get(2)[0, 0, 0] == 2 and decoded == [1, 2, 3, 2]
    assert (cache.hits, cache.misses) == (2, 4)


def test_sizes_have_their_own_blocks_bounded_in_bytes_and_errors_cache_nothing():
    cache = ImageCache(capacity=1000, max_bytes=8 * 8 * 3 * 10)
    assert cache.slots_for(8) == 10 and cache.slots_for(4) == 40
    for key in range(30):
        cache.get(key, 8, lambda k=key: picture(k, 8))
        cache.get(key, 4, lambda k=key: picture(k, 4))
    assert cache._blocks[8].shape == (10, 8, 8, 3) and cache._blocks[4].shape == (40, 4, 4, 3)
    assert cache.get(29, 8, lambda: pytest.fail("cached"))[0, 0, 0] == 29

    def broken():
        raise OSError("unreadable")

    with pytest.raises(OSError):
        cache.get("bad", 4, broken)
    with pytest.raises(OSError):
        cache.get("bad", 4, broken)  # tried again: nothing was cached
